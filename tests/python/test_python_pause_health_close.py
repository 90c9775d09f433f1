"""Pausing with QueueOptions(0, 0, 0), host health with a
BasicHealthMonitor, and close_queue with acknowledgements outstanding."""
import signal
import threading
import time

import pytest

from pyhelp import Recorder, queue_figures, url, wait_for


def test_pause_stops_delivery_and_resume_restarts_it(mq, broker):
    """After configure_queue(QueueOptions(0, 0, 0)) returns, every callback
    for what came before has run and nothing more arrives while messages
    pile up in the broker; configuring a window again delivers them."""
    rec = Recorder()
    in_callback = threading.Event()
    slow = {"first": True}

    def on_message(message, handle):
        if slow["first"]:
            slow["first"] = False
            in_callback.set()
            time.sleep(0.3)  # configure must wait for this callback
        rec.on_message(message, handle)

    with mq.Session(rec.on_event, on_message=on_message, broker=url(broker)) as s:
        s.open_queue("/queue/p", read=True, write=True)
        s.post("/queue/p", b"first")
        assert in_callback.wait(10)
        s.configure_queue("/queue/p", mq.QueueOptions(0, 0, 0))
        assert [m.data for m in rec.messages] == [b"first"]  # its callback finished first
        assert s.get_queue_options("/queue/p") == mq.QueueOptions(0, 0, 0, False)
        for i in range(10):
            s.post("/queue/p", b"held %d" % i, on_ack=rec.on_ack)
        rec.wait_acks(10)
        time.sleep(0.3)
        assert len(rec.messages) == 1
        f = queue_figures(broker, "/queue/p")
        assert (f["depth"], f["consumers"]) == (10, 0)
        s.configure_queue("/queue/p", mq.QueueOptions(max_unconfirmed_messages=100, max_unconfirmed_bytes=1 << 20))
        rec.wait_messages(11)
        assert [m.data for m in rec.messages[1:]] == [b"held %d" % i for i in range(10)]
        # the guide's ending: pause, then close
        s.configure_queue("/queue/p", mq.QueueOptions(0, 0, 0))
        s.close_queue("/queue/p")
    wait_for(lambda: queue_figures(broker, "/queue/p")["depth"] == 0, what="everything confirmed")


def test_host_health_suspends_and_resumes(mq, broker):
    """A queue opened with suspends_on_bad_host_health: set_unhealthy gives
    HostUnhealthy and QueueSuspended, posts raise and nothing is delivered;
    set_healthy gives QueueResumed, then HostHealthRestored, and delivery
    resumes. A queue without the option is not affected."""
    rec = Recorder()
    monitor = mq.BasicHealthMonitor()
    opts = mq.QueueOptions(suspends_on_bad_host_health=True)
    with mq.Session(rec.on_event, on_message=rec.on_message, broker=url(broker),
                    host_health_monitor=monitor) as s:
        s.open_queue("/queue/sens", read=True, write=True, options=opts)
        s.open_queue("/queue/plain", write=True)
        monitor.set_unhealthy()
        rec.wait_event(mq.session_events.HostUnhealthy)
        suspended = rec.wait_event(mq.session_events.QueueSuspended)
        assert suspended.queue_uri == "/queue/sens"
        with pytest.raises(mq.Error, match="suspended"):
            s.post("/queue/sens", b"x")
        s.post("/queue/plain", b"x", on_ack=rec.on_ack)
        rec.wait_acks(1)
        # a message that arrives in the broker meanwhile waits there
        with mq.Session(lambda e: None, broker=url(broker)) as other:
            other.open_queue("/queue/sens", write=True)
            other.post("/queue/sens", b"while unhealthy", on_ack=rec.on_ack)
            rec.wait_acks(2)
        time.sleep(0.3)
        assert rec.messages == []
        monitor.set_healthy()
        rec.wait_event(mq.session_events.HostHealthRestored)
        kinds = rec.kinds()
        i = kinds.index("HostUnhealthy")
        assert kinds[i:] == ["HostUnhealthy", "QueueSuspended", "QueueResumed", "HostHealthRestored"], kinds
        rec.wait_messages(1)
        assert rec.messages[0].data == b"while unhealthy"
        s.post("/queue/sens", b"after", on_ack=rec.on_ack)
        rec.wait_acks(3)


def test_session_started_unhealthy(mq, broker):
    """A monitor that already says unhealthy: HostUnhealthy is reported,
    and a sensitive queue opens suspended."""
    rec = Recorder()
    monitor = mq.BasicHealthMonitor()
    monitor.set_unhealthy()
    with mq.Session(rec.on_event, on_message=rec.on_message, broker=url(broker),
                    host_health_monitor=monitor) as s:
        rec.wait_event(mq.session_events.HostUnhealthy)
        s.open_queue("/queue/u", write=True, options=mq.QueueOptions(suspends_on_bad_host_health=True))
        rec.wait_event(mq.session_events.QueueSuspended)
        with pytest.raises(mq.Error, match="suspended"):
            s.post("/queue/u", b"x")
        monitor.set_healthy()
        rec.wait_event(mq.session_events.HostHealthRestored)
        s.post("/queue/u", b"x")


def test_close_with_outstanding_acks_nacks_them_first(mq, broker):
    """The broker stops answering (SIGSTOP): close_queue acknowledges every
    outstanding post negatively (CANCELED) before it returns, then says the
    broker did not answer."""
    rec = Recorder()
    with mq.Session(rec.on_event, broker=url(broker)) as s:
        s.open_queue("/queue/slow", write=True)
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(50):
                s.post("/queue/slow", b"x", on_ack=rec.on_ack)
            with pytest.raises(mq.BrokerTimeoutError, match="unanswered"):
                s.close_queue("/queue/slow", timeout=0.5)
            assert len(rec.acks) == 50
            assert {a.status for a in rec.acks} == {mq.AckStatus.CANCELED}
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        with pytest.raises(mq.Error, match="not open"):
            s.post("/queue/slow", b"x")


def test_close_while_broker_is_down_nacks_kept_posts(mq, make_broker):
    """The broker is gone: posts waiting to be sent again are acknowledged
    negatively before close_queue returns (no waiting for a broker)."""
    b = make_broker()
    rec = Recorder()
    s = mq.Session(rec.on_event, broker=url(b))
    try:
        s.open_queue("/queue/gone", write=True)
        b.kill()
        rec.wait_event(mq.session_events.ConnectionLost)
        for i in range(5):
            s.post("/queue/gone", b"x", on_ack=rec.on_ack)
        t0 = time.time()
        s.close_queue("/queue/gone")
        assert time.time() - t0 < 2
        assert [a.status for a in rec.acks] == [mq.AckStatus.CANCELED] * 5
    finally:
        s.stop()


def test_close_waits_for_acks_the_broker_sends(mq, broker):
    """The common case: close right after posting returns once every ack
    has arrived, all SUCCESS (the guide's producer)."""
    rec = Recorder()
    with mq.Session(rec.on_event, broker=url(broker)) as s:
        s.open_queue("/queue/quick", write=True)
        for i in range(200):
            s.post("/queue/quick", b"x" * 100, on_ack=rec.on_ack)
        s.close_queue("/queue/quick")
        assert len(rec.acks) == 200
        assert {a.status for a in rec.acks} == {mq.AckStatus.SUCCESS}
