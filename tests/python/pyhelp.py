"""Helpers for the Python package's tests: a recorder for what a
Session's callbacks report, and queue figures from the broker itself."""
import threading
import time

from mqtest import Control, wait_for  # noqa: F401  (wait_for re-exported)


class Recorder:
    """on_session_event, on_message and on_ack in one place, thread-safe.
    Messages are confirmed unless confirm=False; `threads` notes which
    thread ran each callback."""

    def __init__(self, confirm=True):
        self.events = []
        self.messages = []
        self.acks = []
        self.errors = []
        self.threads = set()
        self.confirm = confirm
        self.cond = threading.Condition()

    def on_event(self, event):
        with self.cond:
            self.threads.add(threading.current_thread().name)
            self.events.append(event)
            self.cond.notify_all()

    def on_message(self, message, handle):
        if self.confirm:
            try:
                handle.confirm()
            except Exception as e:  # recorded: the test decides
                self.errors.append(e)
        with self.cond:
            self.threads.add(threading.current_thread().name)
            self.messages.append(message)
            self.cond.notify_all()

    def on_ack(self, ack):
        with self.cond:
            self.threads.add(threading.current_thread().name)
            self.acks.append(ack)
            self.cond.notify_all()

    def wait(self, pred, timeout=15.0, what="condition"):
        end = time.time() + timeout
        with self.cond:
            while not pred():
                left = end - time.time()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                         f"events: {self.events}")
                self.cond.wait(left)

    def wait_event(self, cls, count=1, timeout=15.0):
        self.wait(lambda: sum(isinstance(e, cls) for e in self.events) >= count, timeout,
                  f"{count} {cls.__name__} event(s)")
        return [e for e in self.events if isinstance(e, cls)][count - 1]

    def wait_messages(self, n, timeout=15.0):
        self.wait(lambda: len(self.messages) >= n, timeout, f"{n} messages (have {len(self.messages)})")

    def wait_acks(self, n, timeout=15.0):
        self.wait(lambda: len(self.acks) >= n, timeout, f"{n} acks (have {len(self.acks)})")

    def kinds(self):
        with self.cond:
            return [type(e).__name__ for e in self.events]


def queue_figures(broker, name):
    """depth, unacked and consumers of a queue, from the control socket."""
    ctl = Control(broker)
    try:
        r = ctl.call(f"show {name}")
        if not r["ok"]:
            return {"depth": 0, "unacked": 0, "consumers": 0, "missing": True}
        return r["data"]
    finally:
        ctl.close()


def url(broker):
    return f"tcp://127.0.0.1:{broker.port}"
