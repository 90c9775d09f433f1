"""mqclient: BlazingMQ's Python session API, for mqbroker.

A program written for BlazingMQ's ``blazingmq`` package runs with its
import line changed (``import mqclient as blazingmq``) and its queue URIs
either kept (``bmq://DOMAIN/NAME`` is mqbroker's ``/queue/DOMAIN/NAME``) or
replaced by STOMP destinations (``/queue/jobs``). It uses the installed C
library (libmqclient.so.1) through ctypes: nothing to compile, nothing
from outside Debian. docs/python.md is the guide.
"""
from . import exceptions
from . import session_events
from ._enums import AckStatus
from ._messages import Ack, Message, MessageHandle
from ._monitors import BasicHealthMonitor
from ._session import QueueOptions, Session, Timeouts
from .exceptions import BrokerTimeoutError, Error

__version__ = "1.0.0"

__all__ = [
    "Ack", "AckStatus", "BasicHealthMonitor", "BrokerTimeoutError", "Error", "Message", "MessageHandle",
    "QueueOptions", "Session", "Timeouts", "exceptions", "session_events",
]
