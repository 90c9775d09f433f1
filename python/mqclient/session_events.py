"""Session events, with BlazingMQ's names and meaning.

Each is given to the ``on_session_event`` callback of a `Session`, on the
session's own thread. `log_session_event` is a ready-made callback that
logs them.
"""
import logging

LOGGER = logging.getLogger(__name__)


class SessionEvent:
    """Base of every session event."""

    def __init__(self, message=None):
        self._message = message

    def __repr__(self):
        if self._message:
            return f"<{type(self).__name__}: {self._message}>"
        return f"<{type(self).__name__}>"

    def __eq__(self, other):
        return type(self) is type(other) and self._message == other._message

    def __ne__(self, other):
        return not self == other

    __hash__ = None


class QueueEvent(SessionEvent):
    """A session event about one queue: `queue_uri` names it."""

    def __init__(self, queue_uri, message=None):
        self.queue_uri = queue_uri
        super().__init__(message)

    def __repr__(self):
        if self._message:
            return f"<{type(self).__name__}: {self.queue_uri} {self._message}>"
        return f"<{type(self).__name__}: {self.queue_uri}>"

    def __eq__(self, other):
        return super().__eq__(other) and self.queue_uri == other.queue_uri

    __hash__ = None


class Connected(SessionEvent):
    """The session is connected to the broker."""


class Disconnected(SessionEvent):
    """The session is disconnected, at its end (`Session.stop`)."""


class ConnectionLost(SessionEvent):
    """The connection dropped; the session is reconnecting."""


class Reconnected(SessionEvent):
    """Connected again after `ConnectionLost`; queues are being reopened."""


class StateRestored(SessionEvent):
    """After `Reconnected`: every queue reopened (or failed to), and posts
    waiting for their acknowledgement sent again."""


class ConnectionTimeout(SessionEvent):
    """The first connection could not be made in time."""


class HostUnhealthy(SessionEvent):
    """The host health monitor says the host is unhealthy."""


class HostHealthRestored(SessionEvent):
    """The host is healthy again; every suspended queue has been resumed
    (a `QueueResumed` or `QueueResumeFailed` came first for each)."""


class QueueSuspended(QueueEvent):
    """A queue opened with ``suspends_on_bad_host_health`` is suspended."""


class QueueSuspendFailed(QueueEvent):
    """Named as in BlazingMQ; mqbroker never reports it (suspending cannot fail)."""


class QueueResumed(QueueEvent):
    """A suspended queue works again."""


class QueueResumeFailed(QueueEvent):
    """The broker refused to subscribe a suspended queue again."""


class QueueReopened(QueueEvent):
    """After a reconnection: the queue is subscribed again."""


class QueueReopenFailed(QueueEvent):
    """After a reconnection: the broker refused to subscribe the queue again."""


class SlowConsumerNormal(SessionEvent):
    """Named as in BlazingMQ; not reported."""


class SlowConsumerHighWaterMark(SessionEvent):
    """Named as in BlazingMQ; not reported."""


class Error(SessionEvent):
    """The broker reported an error (an ERROR frame); the connection ends with it."""


class InterfaceError(SessionEvent):
    """The library behaved in a way this package did not expect."""


_INFO = (Connected, Disconnected, StateRestored, SlowConsumerNormal, QueueReopened, HostUnhealthy,
         HostHealthRestored, QueueSuspended, QueueResumed)
_WARN = (ConnectionLost, Reconnected, SlowConsumerHighWaterMark)


def log_session_event(event):
    """Logs a session event: routine ones at INFO, those that may mean
    trouble (a lost connection) at WARNING, failures at ERROR."""
    if isinstance(event, _INFO):
        level = logging.INFO
    elif isinstance(event, _WARN):
        level = logging.WARNING
    else:
        level = logging.ERROR
    LOGGER.log(level, "Received session event: %s", event)
