"""AckStatus, as in BlazingMQ."""
import enum


class AckStatus(enum.Enum):
    """The outcome of a post, given to its ``on_ack`` callback.

    mqbroker's receipts say yes or no; how the library came to a no is
    one of REFUSED (the broker answered with an ERROR naming the post),
    UNKNOWN (the connection closed after the post was sent and before the
    broker answered: it may or may not have it) and CANCELED (the post was
    never answered on a live connection: its queue was closed, or the
    session stopped, while it waited). The other members exist for
    BlazingMQ programs that name them; mqbroker never reports them.
    """

    SUCCESS = "SUCCESS"
    UNKNOWN = "UNKNOWN"
    TIMEOUT = "TIMEOUT"
    NOT_CONNECTED = "NOT_CONNECTED"
    CANCELED = "CANCELED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REFUSED = "REFUSED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_READY = "NOT_READY"
    LIMIT_MESSAGES = "LIMIT_MESSAGES"
    LIMIT_BYTES = "LIMIT_BYTES"
    STORAGE_FAILURE = "STORAGE_FAILURE"
    UNRECOGNIZED = "UNRECOGNIZED"

    def __repr__(self):
        return f"<AckStatus.{self.name}>"
