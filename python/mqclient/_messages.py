"""Message, MessageHandle and Ack, as in BlazingMQ."""
from .exceptions import Error

# Headers that describe a MESSAGE frame rather than what its producer set.
FRAME_HEADERS = frozenset(("destination", "message-id", "subscription", "ack", "content-length",
                           "redelivered", "delivery-count"))


class Message:
    """A message received on a queue opened with ``read=True``.

    Attributes:
        data (bytes): the body.
        guid (bytes): the broker's message-id.
        queue_uri (str): the queue it arrived on, as given to open_queue.
        properties (dict): every header its producer set (str to str), the
            ``mq-post-id`` of a post that may have been sent twice included.
        redelivered (bool): the broker delivered it before.
    """

    __slots__ = ("data", "guid", "queue_uri", "properties", "redelivered", "_token", "_session")

    def __init__(self):
        raise Error("Message has no public constructor: messages come from the on_message callback")

    def __repr__(self):
        return f"<Message[{self.guid.decode('ascii', 'replace')}] for {self.queue_uri}>"


def make_message(data, guid, queue_uri, properties, redelivered, token, session):
    m = Message.__new__(Message)
    m.data = data
    m.guid = guid
    m.queue_uri = queue_uri
    m.properties = properties
    m.redelivered = redelivered
    m._token = token
    m._session = session
    return m


class MessageHandle:
    """What can be done with a message: given with it to on_message."""

    __slots__ = ("_message",)

    def __init__(self):
        raise Error("MessageHandle has no public constructor")

    def confirm(self):
        """Confirms the message it came with (see `Session.confirm`)."""
        self._message._session.confirm(self._message)

    def __repr__(self):
        return f"<MessageHandle[{self._message.guid.decode('ascii', 'replace')}] for {self._message.queue_uri}>"


def make_handle(message):
    h = MessageHandle.__new__(MessageHandle)
    h._message = message
    return h


class Ack:
    """The outcome of a post made with ``on_ack``.

    Attributes:
        status (AckStatus): SUCCESS, or why not.
        queue_uri (str): the queue posted to.
        guid: None (mqbroker's receipts name no message).
    """

    __slots__ = ("guid", "status", "_status_description", "queue_uri")

    def __init__(self):
        raise Error("Ack has no public constructor")

    def __repr__(self):
        return f"<Ack {self._status_description or self.status.name} for {self.queue_uri}>"


def make_ack(status, description, queue_uri):
    a = Ack.__new__(Ack)
    a.guid = None
    a.status = status
    a._status_description = description
    a.queue_uri = queue_uri
    return a
