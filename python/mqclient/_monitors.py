"""BasicHealthMonitor, as in BlazingMQ."""
import threading
import weakref


class BasicHealthMonitor:
    """Tells the sessions it is given to whether the host is healthy.

    Pass it as ``host_health_monitor`` to `Session`; then `set_unhealthy`
    suspends every queue opened with ``suspends_on_bad_host_health`` and
    `set_healthy` resumes them. A new monitor says healthy. One monitor may
    serve several sessions.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._healthy = True
        self._sessions = weakref.WeakSet()

    def set_healthy(self):
        """The host is healthy."""
        self._set(True)

    def set_unhealthy(self):
        """The host is unhealthy."""
        self._set(False)

    def _set(self, healthy):
        with self._lock:
            self._healthy = healthy
            sessions = list(self._sessions)
        for s in sessions:
            s._host_health(healthy)

    def _attach(self, session):
        with self._lock:
            self._sessions.add(session)
            return self._healthy

    def _detach(self, session):
        with self._lock:
            self._sessions.discard(session)

    def __repr__(self):
        return "BasicHealthMonitor()"
