"""Session and QueueOptions: BlazingMQ's session API over mqclient's agent.

Threads. The C library runs the connection on a thread of its own (its
"agent"); this module adds one Python thread, the session's callback
thread, which takes what the agent reports in order and runs
on_session_event, on_message and every on_ack there, as BlazingMQ runs
them on its own threads. Requests (open, configure, close, stop) are
handed to the agent and waited for here; each completes only after the
callback thread has run every callback that preceded its completion. So
BlazingMQ's rule holds, with a clear exception where BlazingMQ would
deadlock: open_queue, configure_queue, close_queue and stop cannot be
called from a callback; confirm can.
"""
import itertools
import logging
import os
import threading

from . import _lib
from . import _uri
from . import session_events as ev
from ._enums import AckStatus
from ._messages import FRAME_HEADERS, make_ack, make_handle, make_message
from ._monitors import BasicHealthMonitor
from .exceptions import BrokerTimeoutError, Error

LOGGER = logging.getLogger(__name__)
_agent_post = _lib.agent_post

DEFAULT_BROKER = "tcp://127.0.0.1:61613"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_DISCONNECT_TIMEOUT = 10.0
DEFAULT_QUEUE_TIMEOUT = 30.0


class _DefaultTimeout(float):
    def __repr__(self):
        return "..."


DEFAULT_TIMEOUT = _DefaultTimeout()


class Timeouts:
    """Seconds to wait for each kind of request (None: the default)."""

    def __init__(self, connect_timeout=None, disconnect_timeout=None, open_queue_timeout=None,
                 configure_queue_timeout=None, close_queue_timeout=None):
        self.connect_timeout = connect_timeout
        self.disconnect_timeout = disconnect_timeout
        self.open_queue_timeout = open_queue_timeout
        self.configure_queue_timeout = configure_queue_timeout
        self.close_queue_timeout = close_queue_timeout

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"Timeouts({fields})"


class QueueOptions:
    """A queue's options. None means "the default" when opening and
    "unchanged" when configuring.

    max_unconfirmed_messages, max_unconfirmed_bytes: how many messages
        (bytes of bodies) the broker may deliver to this consumer before it
        confirms some. 0 for either pauses the queue, as in BlazingMQ
        (``QueueOptions(0, 0, 0)``): mqbroker has no window of zero, so a
        paused queue has no subscription at all, and what it had received
        without confirming goes back to the broker.
    consumer_priority: a queue delivers to its highest-priority consumers.
    suspends_on_bad_host_health: receive nothing and refuse posts while
        the session's host health monitor says the host is unhealthy.
    """

    DEFAULT_MAX_UNCONFIRMED_MESSAGES = 1024
    DEFAULT_MAX_UNCONFIRMED_BYTES = 33554432
    DEFAULT_CONSUMER_PRIORITY = 0
    DEFAULT_SUSPENDS_ON_BAD_HOST_HEALTH = False

    def __init__(self, max_unconfirmed_messages=None, max_unconfirmed_bytes=None, consumer_priority=None,
                 suspends_on_bad_host_health=None):
        self.max_unconfirmed_messages = max_unconfirmed_messages
        self.max_unconfirmed_bytes = max_unconfirmed_bytes
        self.consumer_priority = consumer_priority
        self.suspends_on_bad_host_health = suspends_on_bad_host_health

    def _fields(self):
        return (self.max_unconfirmed_messages, self.max_unconfirmed_bytes, self.consumer_priority,
                self.suspends_on_bad_host_health)

    def __eq__(self, other):
        return isinstance(other, QueueOptions) and self._fields() == other._fields()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        names = ("max_unconfirmed_messages", "max_unconfirmed_bytes", "consumer_priority",
                 "suspends_on_bad_host_health")
        params = [f"{n}={v!r}" for n, v in zip(names, self._fields()) if v is not None]
        return f"QueueOptions({', '.join(params)})"


def _resolve(options, current):
    """Every option set: from `options`, else `current`, else the default."""
    base = current or QueueOptions(QueueOptions.DEFAULT_MAX_UNCONFIRMED_MESSAGES,
                                   QueueOptions.DEFAULT_MAX_UNCONFIRMED_BYTES,
                                   QueueOptions.DEFAULT_CONSUMER_PRIORITY,
                                   QueueOptions.DEFAULT_SUSPENDS_ON_BAD_HOST_HEALTH)
    got = options._fields()
    out = QueueOptions(*(g if g is not None else b for g, b in zip(got, base._fields())))
    m, b, p = out.max_unconfirmed_messages, out.max_unconfirmed_bytes, out.consumer_priority
    if not isinstance(m, int) or not 0 <= m <= 0xFFFFFFFF:
        raise Error(f"max_unconfirmed_messages {m!r}: expected an integer 0..4294967295")
    if not isinstance(b, int) or not 0 <= b < 2 ** 63:
        raise Error(f"max_unconfirmed_bytes {b!r}: expected an integer 0..2**63-1")
    if not isinstance(p, int) or not -1000000 <= p <= 1000000:
        raise Error(f"consumer_priority {p!r}: expected an integer -1000000..1000000")
    out.suspends_on_bad_host_health = bool(out.suspends_on_bad_host_health)
    return out


def _c_opts(o):
    q = _lib.QueueOpts()
    q.max_unconfirmed_messages = o.max_unconfirmed_messages
    q.max_unconfirmed_bytes = o.max_unconfirmed_bytes
    q.consumer_priority = o.consumer_priority
    q.paused = o.max_unconfirmed_messages == 0 or o.max_unconfirmed_bytes == 0
    q.suspend_on_bad_host_health = o.suspends_on_bad_host_health
    return q


def _seconds(value, default):
    if value is None or value is DEFAULT_TIMEOUT:
        return default
    if not isinstance(value, (int, float)) or not 0 < value < 2 ** 31 / 1000:
        raise ValueError(f"timeout must be greater than 0.0, was {value!r}")
    return float(value)


def _hosts(broker):
    """'tcp://h:p', 'h:p', a comma-separated list of those, or a list."""
    items = broker if isinstance(broker, (list, tuple)) else str(broker).split(",")
    out = []
    for item in items:
        item = item.strip()
        if item.startswith("tcp://"):
            item = item[6:]
        if not item or "://" in item or "/" in item:
            raise Error(f"invalid broker address {item!r}: expected tcp://HOST:PORT")
        out.append(item)
    if not out:
        raise Error("no broker address given")
    return out


class _Request:
    __slots__ = ("done", "code", "text")

    def __init__(self):
        self.done = threading.Event()
        self.code = None
        self.text = ""


class _Queue:
    __slots__ = ("uri", "id", "flags", "options")

    def __init__(self, uri, qid, flags, options):
        self.uri = uri
        self.id = qid
        self.flags = flags
        self.options = options


_EVENTS = {
    _lib.EV_CONNECTED: ev.Connected,
    _lib.EV_CONNECT_FAILED: ev.ConnectionTimeout,
    _lib.EV_DISCONNECTED: ev.Disconnected,
    _lib.EV_ERROR_FRAME: ev.Error,
    _lib.EV_CONNECTION_LOST: ev.ConnectionLost,
    _lib.EV_RECONNECTED: ev.Reconnected,
    _lib.EV_STATE_RESTORED: ev.StateRestored,
    _lib.EV_HOST_UNHEALTHY: ev.HostUnhealthy,
    _lib.EV_HOST_HEALTH_RESTORED: ev.HostHealthRestored,
}
_QUEUE_EVENTS = {
    _lib.EV_QUEUE_REOPENED: ev.QueueReopened,
    _lib.EV_QUEUE_REOPEN_FAILED: ev.QueueReopenFailed,
    _lib.EV_QUEUE_SUSPENDED: ev.QueueSuspended,
    _lib.EV_QUEUE_RESUMED: ev.QueueResumed,
    _lib.EV_QUEUE_RESUME_FAILED: ev.QueueResumeFailed,
}
_HEALTH = (_lib.EV_HOST_UNHEALTHY, _lib.EV_HOST_HEALTH_RESTORED, _lib.EV_QUEUE_SUSPENDED,
           _lib.EV_QUEUE_RESUMED, _lib.EV_QUEUE_RESUME_FAILED)
_FAILED = {
    _lib.REASON_REFUSED: AckStatus.REFUSED,
    _lib.REASON_CONNECTION: AckStatus.UNKNOWN,
    _lib.REASON_CANCELED: AckStatus.CANCELED,
}


class Session:
    """A connection to mqbroker, with BlazingMQ's session API.

    Args:
        on_session_event: called with each `SessionEvent`.
        on_message: called with (Message, MessageHandle) for every message
            of every queue opened with ``read=True``.
        broker: ``tcp://HOST:PORT``, or several (a list, or separated by
            commas) to fail over between. The environment variable
            BMQ_BROKER_URI, when set, wins, as in BlazingMQ.
        timeout: seconds for open_queue, configure_queue and close_queue,
            or a `Timeouts`.
        host_health_monitor: a `BasicHealthMonitor`, or None (the default):
            no host health events, and suspends_on_bad_host_health cannot
            be used.
        login, passcode, vhost: for the broker's CONNECT.
        reconnect: make a dropped connection again by itself (default
            True), as BlazingMQ does.
        resend_on_reconnect: posts waiting for their acknowledgement when
            the connection drops are sent again once it is back, with the
            same ``mq-post-id`` header (default True); False fails them
            with AckStatus.UNKNOWN.
        persistent: post with ``persistent:true`` (default True), so that a
            SUCCESS ack means what it means in BlazingMQ: the broker has
            stored the message (mqbroker's journal, fsynced before the
            receipt) and a restart does not lose it.

    Raises:
        Error: the session could not start (the first connection failed).
        BrokerTimeoutError: no connection within the connect timeout.
    """

    def __init__(self, on_session_event, on_message=None, broker=DEFAULT_BROKER, timeout=DEFAULT_TIMEOUT,
                 host_health_monitor=None, *, login=None, passcode=None, vhost=None, reconnect=True,
                 resend_on_reconnect=True, persistent=True):
        if not callable(on_session_event):
            raise TypeError("on_session_event must be callable")
        if on_message is not None and not callable(on_message):
            raise TypeError("on_message must be callable")
        if host_health_monitor is not None and not isinstance(host_health_monitor, BasicHealthMonitor):
            raise TypeError("host_health_monitor must be None or a BasicHealthMonitor")
        if not isinstance(timeout, Timeouts):
            timeout = Timeouts(open_queue_timeout=timeout, configure_queue_timeout=timeout,
                               close_queue_timeout=timeout)
        self._timeouts = timeout
        self._post_flags = _lib.MQ_PERSISTENT if persistent else 0
        self._on_session_event = on_session_event
        self._on_message = on_message
        self._monitor = host_health_monitor
        self._tokens = itertools.count(1)
        self._acks = {}
        self._requests = {}
        self._queues = {}
        self._by_id = {}
        self._lock = threading.Lock()
        self._agent = None
        self._stopped = False
        self._callback_thread = None
        self._started = threading.Event()
        self._start_error = None
        self._closed = threading.Event()

        hosts = _hosts(os.environ.get("BMQ_BROKER_URI") or broker)
        connect_s = _seconds(timeout.connect_timeout, DEFAULT_CONNECT_TIMEOUT)
        self._keep = [h.encode() for h in hosts]
        arr = (_lib.c_char_p * len(hosts))(*self._keep)
        o = _lib.SessionOpts()
        o.hosts = arr
        o.nhosts = len(hosts)
        o.connect_timeout_ms = int(connect_s * 1000)
        o.reconnect = bool(reconnect)
        o.repost = _lib.REPOST_RESEND if resend_on_reconnect else _lib.REPOST_FAIL
        o.heartbeat_send_ms = 10000
        o.heartbeat_recv_ms = 10000
        o.tls_env = True  # MQ_CLIENT_CERT_KEY, MQ_CLIENT_CA_CHAIN, MQ_CLIENT_SERVER_NAME (docs/client.md)
        for name, value in (("login", login), ("passcode", passcode), ("vhost", vhost)):
            if value is not None:
                b = str(value).encode()
                self._keep.append(b)
                setattr(o, name, b)
        agent = _lib.agent_new(o)
        if not agent:
            raise Error(_lib.last_error())
        self._agent = agent
        if host_health_monitor is not None and not host_health_monitor._attach(self):
            _lib.agent_set_host_health(agent, False)
        if _lib.agent_start(agent) != 0:
            err = _lib.last_error()
            self._release()
            raise Error(f"cannot start the session: {err}")
        self._callback_thread = threading.Thread(target=self._run, name="mqclient-session", daemon=True)
        self._callback_thread.start()
        if not self._started.wait(connect_s + 5):
            self.stop()
            raise BrokerTimeoutError(f"no connection to {', '.join(hosts)} within {connect_s} s")
        if self._start_error is not None:
            self.stop()
            raise Error(f"cannot connect: {self._start_error}")

    # ---- the callback thread ----

    def _run(self):
        # Events are read as raw bytes and unpacked in one C-level pass:
        # attribute access on ctypes structures costs more than the rest
        # of handling an acknowledgement.
        buf = (_lib.AgentEvent * 512)()
        size = _lib.ctypes.sizeof(_lib.AgentEvent)
        unpack = _lib.EVENT_STRUCT.iter_unpack
        poll = _lib.agent_poll
        agent = self._agent
        acks = self._acks
        string_at = _lib.ctypes.string_at
        ACK, MESSAGE, EVENT, DONE, CLOSED = (_lib.AGENT_ACK, _lib.AGENT_MESSAGE, _lib.AGENT_EVENT,
                                             _lib.AGENT_DONE, _lib.AGENT_CLOSED)
        SUCCESS = AckStatus.SUCCESS
        while True:
            n = poll(agent, buf, 512, -1)
            if not n:
                continue
            for e in unpack(string_at(buf, n * size)):
                kind = e[0]
                if kind == ACK:
                    entry = acks.pop(e[4], None)
                    if entry is None:
                        continue
                    if e[1] == 0:
                        ack = make_ack(SUCCESS, "", entry[1])
                    else:
                        ack = make_ack(_FAILED.get(e[2], AckStatus.UNKNOWN),
                                       string_at(e[5]).decode("utf-8", "replace"), entry[1])
                    try:
                        entry[0](ack)
                    except Exception:
                        LOGGER.exception("on_ack callback raised")
                elif kind == MESSAGE:
                    self._message(e, string_at)
                elif kind == EVENT:
                    self._event(e, string_at)
                elif kind == DONE:
                    req = self._requests.pop(e[4], None)
                    if req is not None:
                        req.code = e[1]
                        req.text = string_at(e[5]).decode("utf-8", "replace")
                        req.done.set()
                elif kind == CLOSED:
                    self._closed.set()
                    self._started.set()
                    for req in list(self._requests.values()):
                        req.code = -1
                        req.text = "the session is stopped"
                        req.done.set()
                    return

    def _message(self, e, string_at):
        # e: (kind, code, reason, queue, token, text, body, body_len, headers, headers_len, redelivered, _)
        q = self._by_id.get(e[3])
        if q is None or self._on_message is None:
            return
        props = {}
        guid = b""
        if e[9]:
            parts = string_at(e[8], e[9]).split(b"\0")
            for i in range(0, len(parts) - 1, 2):
                name = parts[i].decode("utf-8", "replace")
                if name == "message-id":
                    guid = parts[i + 1]
                elif name not in FRAME_HEADERS and name not in props:
                    props[name] = parts[i + 1].decode("utf-8", "replace")
        m = make_message(string_at(e[6], e[7]), guid, q.uri, props, bool(e[10]), e[4], self)
        try:
            self._on_message(m, make_handle(m))
        except Exception:
            LOGGER.exception("on_message callback raised")

    def _event(self, e, string_at):
        text = string_at(e[5]).decode("utf-8", "replace") if e[5] else ""
        code = e[1]
        if code == _lib.EV_CONNECTED and not self._started.is_set():
            self._started.set()
        elif code == _lib.EV_CONNECT_FAILED and not self._started.is_set():
            self._start_error = text
            self._started.set()
        if code in _HEALTH and self._monitor is None:
            return
        if code in _QUEUE_EVENTS:
            q = self._by_id.get(e[3])
            event = _QUEUE_EVENTS[code](q.uri if q else f"queue {e[3]}", text or None)
        elif code in _EVENTS:
            event = _EVENTS[code](text or None)
        else:
            return  # DRAINED: the library's own flow control
        try:
            self._on_session_event(event)
        except Exception:
            LOGGER.exception("on_session_event callback raised")

    # ---- helpers ----

    def _not_in_callback(self, what):
        if threading.current_thread() is self._callback_thread:
            raise Error(f"{what} cannot be called from on_message, on_ack or on_session_event: it waits for "
                        f"the session's callback thread, which is the one running it (BlazingMQ deadlocks here); "
                        f"call it from another thread")

    def _agent_or_raise(self, what):
        if self._stopped or self._agent is None:
            raise Error(f"{what}: the session is stopped")
        return self._agent

    def _request(self):
        token = next(self._tokens)
        req = _Request()
        self._requests[token] = req
        return token, req

    def _wait(self, token, req, seconds, what):
        if not req.done.wait(seconds):
            self._requests.pop(token, None)
            raise BrokerTimeoutError(f"{what}: no answer from the broker within {seconds} s")
        if req.code != 0:
            raise Error(f"{what} failed: {req.text}")

    def _drain_callbacks(self, seconds):
        """Waits until the callback thread has run every callback for what
        the session reported so far, so that the confirms they make are
        queued before what the caller does next (pausing, closing,
        stopping: the broker takes back what is unconfirmed then)."""
        with self._lock:
            if self._agent is None:
                return
            token, req = self._request()
            if _lib.agent_sync(self._agent, token) != 0:
                self._requests.pop(token, None)
                return
        req.done.wait(seconds)

    def _queue(self, uri, what):
        q = self._queues.get(uri)
        if q is None:
            raise Error(f"{what}: queue {uri!r} is not open")
        return q

    def _host_health(self, healthy):
        with self._lock:
            if self._agent is not None and not self._stopped:
                _lib.agent_set_host_health(self._agent, healthy)

    # ---- the API ----

    def open_queue(self, queue_uri, read=False, write=False, options=QueueOptions(), timeout=DEFAULT_TIMEOUT):
        """Opens a queue for reading (its messages go to on_message),
        writing (post), or both, and returns once the broker has confirmed.

        Raises Error (refused, already open, bad URI or options) or
        BrokerTimeoutError."""
        self._not_in_callback("open_queue")
        seconds = _seconds(timeout if timeout is not DEFAULT_TIMEOUT else self._timeouts.open_queue_timeout,
                           DEFAULT_QUEUE_TIMEOUT)
        if not read and not write:
            raise Error(f"open_queue({queue_uri!r}): give read=True, write=True or both")
        if read and self._on_message is None:
            raise Error(f"cannot open queue {queue_uri} in read mode: no on_message callback was given to the Session")
        if options.suspends_on_bad_host_health and self._monitor is None:
            raise Error("queues cannot use suspends_on_bad_host_health: the Session has no host_health_monitor")
        dest = _uri.destination(queue_uri)
        resolved = _resolve(options, None)
        flags = (_lib.MQ_READ if read else 0) | (_lib.MQ_WRITE if write else 0)
        with self._lock:
            agent = self._agent_or_raise("open_queue")
            if queue_uri in self._queues:
                raise Error(f"queue {queue_uri!r} is already open")
            token, req = self._request()
            qid = _lib.agent_open(agent, dest.encode(), flags, _lib.ctypes.byref(_c_opts(resolved)), token)
            if not qid:
                self._requests.pop(token, None)
                raise Error(f"cannot open queue {queue_uri!r}: {_lib.last_error()}")
            q = _Queue(queue_uri, qid, flags, resolved)
            self._queues[queue_uri] = q
            self._by_id[qid] = q
        try:
            self._wait(token, req, seconds, f"open_queue({queue_uri!r})")
        except Error:
            self._forget(q)
            raise

    def _forget(self, q):
        with self._lock:
            if self._queues.get(q.uri) is q:
                del self._queues[q.uri]
                if self._agent is not None and not self._stopped:
                    _lib.agent_close(self._agent, q.id, 0, 0)
            self._by_id.pop(q.id, None)

    def configure_queue(self, queue_uri, options, timeout=DEFAULT_TIMEOUT):
        """Changes a reading queue's options (None fields stay as they
        are) and returns once the broker has confirmed, every callback for
        messages that arrived before having run. QueueOptions(0, 0, 0)
        pauses the queue."""
        self._not_in_callback("configure_queue")
        seconds = _seconds(timeout if timeout is not DEFAULT_TIMEOUT else self._timeouts.configure_queue_timeout,
                           DEFAULT_QUEUE_TIMEOUT)
        if options.suspends_on_bad_host_health and self._monitor is None:
            raise Error("queues cannot use suspends_on_bad_host_health: the Session has no host_health_monitor")
        q = self._queue(queue_uri, "configure_queue")
        if q.flags & _lib.MQ_READ:
            self._drain_callbacks(seconds)
        with self._lock:
            agent = self._agent_or_raise("configure_queue")
            q = self._queue(queue_uri, "configure_queue")
            resolved = _resolve(options, q.options)
            if not q.flags & _lib.MQ_READ:
                # Reading options mean nothing to a queue that only writes.
                q.options = resolved
                return
            token, req = self._request()
            if _lib.agent_configure(agent, q.id, _lib.ctypes.byref(_c_opts(resolved)), token) != 0:
                self._requests.pop(token, None)
                raise Error(f"cannot configure queue {queue_uri!r}: {_lib.last_error()}")
        self._wait(token, req, seconds, f"configure_queue({queue_uri!r})")
        q.options = resolved

    def get_queue_options(self, queue_uri):
        """The options a queue has now."""
        q = self._queue(queue_uri, "get_queue_options")
        o = q.options
        return QueueOptions(o.max_unconfirmed_messages, o.max_unconfirmed_bytes, o.consumer_priority,
                            o.suspends_on_bad_host_health)

    def close_queue(self, queue_uri, timeout=DEFAULT_TIMEOUT):
        """Closes a queue. When it returns, every post made to it has had
        its on_ack called (those the broker had not answered, negatively),
        and no message of it will arrive.

        Raises BrokerTimeoutError when the broker did not answer in time
        (the queue is closed all the same)."""
        self._not_in_callback("close_queue")
        seconds = _seconds(timeout if timeout is not DEFAULT_TIMEOUT else self._timeouts.close_queue_timeout,
                           DEFAULT_QUEUE_TIMEOUT)
        if self._queue(queue_uri, "close_queue").flags & _lib.MQ_READ:
            self._drain_callbacks(seconds)
        with self._lock:
            agent = self._agent_or_raise("close_queue")
            q = self._queue(queue_uri, "close_queue")
            token, req = self._request()
            if _lib.agent_close(agent, q.id, int(seconds * 1000), token) != 0:
                self._requests.pop(token, None)
                raise Error(f"cannot close queue {queue_uri!r}: {_lib.last_error()}")
            del self._queues[queue_uri]
        # The library fails what is left at `seconds` and then answers.
        done = req.done.wait(seconds + 10)
        self._by_id.pop(q.id, None)
        if not done:
            raise BrokerTimeoutError(f"close_queue({queue_uri!r}): no answer within {seconds} s")
        if req.code != 0:
            raise BrokerTimeoutError(f"close_queue({queue_uri!r}): {req.text}")

    def post(self, queue_uri, message, properties=None, property_type_overrides=None, on_ack=None):
        """Posts a message (bytes) to a queue opened with write=True.

        With on_ack, it is called exactly once, on the session's callback
        thread, with an `Ack`. properties become message headers (str, int,
        bool or UTF-8 bytes values). Raises Error when the queue is not
        open for writing, is suspended, or the session cannot post now."""
        q = self._queues.get(queue_uri)
        if q is None or not q.flags & _lib.MQ_WRITE:
            raise Error(f"post: queue {queue_uri!r} is not open for writing")
        if type(message) is not bytes:
            if not isinstance(message, (bytes, bytearray, memoryview)):
                raise TypeError(f"post: the message must be bytes, not {type(message).__name__}")
            message = bytes(message)
        hdrs, n = (self._headers(properties) if properties else (None, 0))
        token = 0
        if on_ack is not None:
            token = next(self._tokens)
            self._acks[token] = (on_ack, queue_uri)
        with self._lock:
            agent = self._agent
            if agent is None or self._stopped:
                self._acks.pop(token, None)
                raise Error("post: the session is stopped")
            r = _agent_post(agent, q.id, message, len(message), hdrs, n, self._post_flags, token)
        if r:
            if r < 0:
                self._acks.pop(token, None)
                raise Error(f"cannot post to {queue_uri}: {_lib.last_error()}")
            if threading.current_thread() is not self._callback_thread:
                # More than the high-water mark waits to be written: let
                # the network catch up (the callback thread must not wait).
                _lib.agent_wait_writable(agent, 10000)

    @staticmethod
    def _headers(properties):
        arr = (_lib.Header * len(properties))()
        for i, (k, v) in enumerate(properties.items()):
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, bytes):
                v = v.decode("utf-8")
            elif not isinstance(v, (str, int)):
                raise Error(f"property {k!r}: values of type {type(v).__name__} are not supported")
            arr[i].name = str(k).encode()
            arr[i].value = str(v).encode()
        return arr, len(properties)

    def confirm(self, message):
        """Tells the broker the message is processed and must not be
        delivered again. Allowed in callbacks. Raises Error when the broker
        no longer knows it: it arrived on a connection that was lost, or
        its queue was paused, reconfigured or suspended since (the broker
        will deliver it again), or it was already confirmed."""
        with self._lock:
            agent = self._agent_or_raise("confirm")
            r = _lib.agent_confirm(agent, message._token)
        if r != _lib.MQ_OK:
            raise Error(f"cannot confirm {message!r}: {_lib.last_error()}")

    def stop(self):
        """Disconnects and ends the session. Posts still waiting for their
        acknowledgement are acknowledged negatively first."""
        self._not_in_callback("stop")
        if not self._stopped and self._agent is not None and self._by_id:
            self._drain_callbacks(_seconds(self._timeouts.disconnect_timeout, DEFAULT_DISCONNECT_TIMEOUT))
        with self._lock:
            if self._stopped or self._agent is None:
                return
            self._stopped = True
            agent = self._agent
            token, req = self._request()
            stopping = _lib.agent_stop(agent, token) == 0
        if stopping:
            req.done.wait(_seconds(self._timeouts.disconnect_timeout, DEFAULT_DISCONNECT_TIMEOUT) + 5)
            self._closed.wait(5)
        if self._callback_thread is not None:
            self._callback_thread.join(5)
            if self._callback_thread.is_alive():
                # A callback that never returns still reads what the agent
                # owns: leave it rather than free it under that callback.
                LOGGER.error("stop: a callback of this session has not returned; its resources are left")
                return
        self._release()

    def _release(self):
        with self._lock:
            agent, self._agent = self._agent, None
            self._stopped = True
        if agent is not None:
            _lib.agent_free(agent)
        if self._monitor is not None:
            self._monitor._detach(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.stop()

    def __repr__(self):
        return f"<mqclient.Session {'stopped' if self._stopped else 'running'}>"
