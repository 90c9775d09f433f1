"""_lib: the installed C library (libmqclient.so.1), through ctypes.

Two handles on the same library: `c` releases the GIL during each call
(for the calls that wait: polling, waiting to write, freeing), `py`
keeps it (for the quick ones, which never wait, so that a producer does
not hand the GIL back and forth once per message).

The library is found, in order, at MQCLIENT_LIBRARY (a path), where
`cmake --install` recorded it (_libpath.py, written at install time), and
by the dynamic linker's own search for libmqclient.so.1.
"""
import ctypes
import os
import struct

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_bool = ctypes.c_bool
c_int32 = ctypes.c_int32
c_uint16 = ctypes.c_uint16
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64

SONAME = "libmqclient.so.1"


def _candidates():
    env = os.environ.get("MQCLIENT_LIBRARY")
    if env:
        yield env
        return
    try:
        from ._libpath import LIBDIR  # written by cmake --install
        yield os.path.join(LIBDIR, SONAME)
    except ImportError:
        pass
    yield SONAME


def _load():
    errors = []
    for path in _candidates():
        try:
            return path, ctypes.CDLL(path), ctypes.PyDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("mqclient: cannot load the C library (" + "; ".join(errors) +
                      "); install it with cmake --install, or set MQCLIENT_LIBRARY to its path")


class Header(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class SessionOpts(ctypes.Structure):
    """struct mq_session_opts (mqclient.h), field for field."""
    _fields_ = [
        ("host", c_char_p),
        ("port", c_uint16),
        ("dns_base", c_void_p),
        ("hosts", ctypes.POINTER(c_char_p)),
        ("nhosts", c_size_t),
        ("vhost", c_char_p),
        ("accept_version", c_char_p),
        ("login", c_char_p),
        ("passcode", c_char_p),
        ("client_id", c_char_p),
        ("heartbeat_send_ms", c_uint),
        ("heartbeat_recv_ms", c_uint),
        ("connect_timeout_ms", c_uint),
        ("reconnect", c_bool),
        ("reconnect_min_ms", c_uint),
        ("reconnect_max_ms", c_uint),
        ("repost", c_int),
        ("tls", c_bool),
        ("tls_env", c_bool),
        ("tls_cert_key", c_char_p),
        ("tls_ca_chain", c_char_p),
        ("tls_server_name", c_char_p),
        ("max_frame", c_size_t),
        ("out_high_water", c_size_t),
        ("out_low_water", c_size_t),
        ("on_event", c_void_p),
        ("on_message", c_void_p),
        ("arg", c_void_p),
    ]


class QueueOpts(ctypes.Structure):
    """struct mq_queue_opts (mqclient.h), field for field."""
    _fields_ = [
        ("id", c_char_p),
        ("ack", c_int),
        ("max_unconfirmed_messages", c_uint32),
        ("max_unconfirmed_bytes", c_uint64),
        ("consumer_priority", c_int32),
        ("paused", c_bool),
        ("suspend_on_bad_host_health", c_bool),
        ("headers", ctypes.POINTER(Header)),
        ("nheaders", c_size_t),
        ("on_message", c_void_p),
        ("on_ready", c_void_p),
        ("arg", c_void_p),
        ("selector", c_char_p),
    ]


class AgentEvent(ctypes.Structure):
    """struct mq_agent_event (mqclient.h)."""
    _fields_ = [
        ("kind", c_int32),
        ("code", c_int32),
        ("reason", c_int32),
        ("queue", c_uint32),
        ("token", c_uint64),
        ("text", c_void_p),
        ("body", c_void_p),
        ("body_len", c_size_t),
        ("headers", c_void_p),
        ("headers_len", c_size_t),
        ("redelivered", c_int32),
        ("unused", c_int32),
    ]


# struct mq_agent_event as raw bytes, for unpacking many at once.
EVENT_STRUCT = struct.Struct("=iiiIQQQQQQii")
assert EVENT_STRUCT.size == ctypes.sizeof(AgentEvent)

# enum mq_agent_kind
AGENT_EVENT, AGENT_ACK, AGENT_MESSAGE, AGENT_DONE, AGENT_CLOSED = range(5)

# enum mq_event_type
(EV_CONNECTED, EV_CONNECT_FAILED, EV_DISCONNECTED, EV_ERROR_FRAME, EV_DRAINED,
 EV_CONNECTION_LOST, EV_RECONNECTED, EV_STATE_RESTORED, EV_QUEUE_REOPENED,
 EV_QUEUE_REOPEN_FAILED, EV_HOST_UNHEALTHY, EV_HOST_HEALTH_RESTORED,
 EV_QUEUE_SUSPENDED, EV_QUEUE_RESUMED, EV_QUEUE_RESUME_FAILED) = range(15)

# enum mq_ack_status, enum mq_ack_reason
ACK_OK, ACK_FAILED = 0, 1
REASON_NONE, REASON_REFUSED, REASON_CONNECTION, REASON_CANCELED = range(4)

# enum mq_result
MQ_OK, MQ_ERR, MQ_ERR_STALE, MQ_ERR_SUSPENDED = 0, -1, -2, -3

MQ_READ, MQ_WRITE = 0x1, 0x2
MQ_PERSISTENT = 0x1
REPOST_RESEND, REPOST_FAIL = 0, 1

PATH, c, py = _load()


def _proto(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


agent_new = _proto(c, "mq_agent_new", c_void_p, ctypes.POINTER(SessionOpts))
agent_start = _proto(c, "mq_agent_start", c_int, c_void_p)
agent_poll = _proto(c, "mq_agent_poll", c_size_t, c_void_p, ctypes.POINTER(AgentEvent), c_size_t, c_int)
agent_wait_writable = _proto(c, "mq_agent_wait_writable", None, c_void_p, c_int)
agent_free = _proto(c, "mq_agent_free", None, c_void_p)
agent_open = _proto(py, "mq_agent_open", c_uint32, c_void_p, c_char_p, c_uint, ctypes.POINTER(QueueOpts), c_uint64)
agent_configure = _proto(py, "mq_agent_configure", c_int, c_void_p, c_uint32, ctypes.POINTER(QueueOpts), c_uint64)
agent_close = _proto(py, "mq_agent_close", c_int, c_void_p, c_uint32, c_uint, c_uint64)
agent_post = _proto(py, "mq_agent_post", c_int, c_void_p, c_uint32, c_char_p, c_size_t,
                    ctypes.POINTER(Header), c_size_t, c_uint, c_uint64)
agent_confirm = _proto(py, "mq_agent_confirm", c_int, c_void_p, c_uint64)
agent_set_host_health = _proto(py, "mq_agent_set_host_health", None, c_void_p, c_bool)
agent_stop = _proto(py, "mq_agent_stop", c_int, c_void_p, c_uint64)
agent_sync = _proto(py, "mq_agent_sync", c_int, c_void_p, c_uint64)
agent_error = _proto(py, "mq_agent_error", c_char_p)
log_set_level = _proto(py, "mq_log_set_level", None, c_int)


def last_error():
    """The reason the last mq_agent_* call of this thread failed."""
    e = agent_error()
    return e.decode("utf-8", "replace") if e else "unknown error"
