"""Exceptions raised by mqclient, named as in BlazingMQ's Python package."""


class Error(Exception):
    """A request failed; the text says which and why."""


class BrokerTimeoutError(Error):
    """The broker did not answer a request in time."""
