"""The Python package's session API against mqbroker: posts and their
acks, messages and confirms (through the session or the handle),
properties, the callback thread, the exceptions raised where BlazingMQ
would deadlock, queue URIs, and requests that fail."""
import threading

import pytest

from pyhelp import Recorder, queue_figures, url, wait_for


def session(mq, broker, rec, **kw):
    return mq.Session(rec.on_event, on_message=rec.on_message, broker=url(broker), **kw)


def test_post_ack_receive_confirm(mq, broker):
    """Three posts with on_ack: three SUCCESS acks; the messages arrive with
    their data and properties on a queue opened for reading, and confirming
    them leaves the broker with nothing."""
    rec = Recorder()
    with session(mq, broker, rec) as s:
        assert isinstance(rec.events[0], mq.session_events.Connected)
        s.open_queue("/queue/py", read=True, write=True)
        for i in range(3):
            s.post("/queue/py", b"body %d" % i, properties={"n": i, "flag": True, "who": "me"}, on_ack=rec.on_ack)
        rec.wait_acks(3)
        assert [a.status for a in rec.acks] == [mq.AckStatus.SUCCESS] * 3
        assert all(a.queue_uri == "/queue/py" for a in rec.acks)
        rec.wait_messages(3)
        assert [m.data for m in rec.messages] == [b"body 0", b"body 1", b"body 2"]
        m = rec.messages[1]
        assert m.queue_uri == "/queue/py"
        assert m.properties["n"] == "1" and m.properties["flag"] == "true" and m.properties["who"] == "me"
        assert "mq-post-id" in m.properties  # the stable id of a post that may be sent again
        assert m.guid and not m.redelivered
        assert rec.errors == []
        wait_for(lambda: queue_figures(broker, "/queue/py")["unacked"] == 0, what="confirms")
        s.close_queue("/queue/py")
    assert isinstance(rec.events[-1], mq.session_events.Disconnected)


def test_callbacks_run_on_the_session_thread(mq, broker):
    """Every callback runs on the session's own thread, one thread."""
    rec = Recorder()
    with session(mq, broker, rec) as s:
        s.open_queue("/queue/t", read=True, write=True)
        s.post("/queue/t", b"x", on_ack=rec.on_ack)
        rec.wait_acks(1)
        rec.wait_messages(1)
    assert rec.threads == {"mqclient-session"}
    assert threading.current_thread().name not in rec.threads


def test_confirm_through_the_session_and_twice(mq, broker):
    """Session.confirm(message) works like the handle's; confirming again
    raises."""
    rec = Recorder(confirm=False)
    with session(mq, broker, rec) as s:
        s.open_queue("/queue/c", read=True, write=True)
        s.post("/queue/c", b"x")
        rec.wait_messages(1)
        s.confirm(rec.messages[0])
        with pytest.raises(mq.Error, match="already confirmed"):
            s.confirm(rec.messages[0])
        wait_for(lambda: queue_figures(broker, "/queue/c")["unacked"] == 0, what="the confirm")


def test_queue_methods_from_callbacks_raise_instead_of_deadlocking(mq, broker):
    """open_queue, configure_queue, close_queue and stop from a callback
    raise Error saying why; confirm from a callback works."""
    rec = Recorder()
    raised = []

    def on_message(message, handle):
        handle.confirm()
        for call in (lambda: s.open_queue("/queue/other", write=True),
                     lambda: s.configure_queue("/queue/d", mq.QueueOptions(0, 0, 0)),
                     lambda: s.close_queue("/queue/d"),
                     lambda: s.stop()):
            try:
                call()
            except mq.Error as e:
                raised.append(str(e))
        rec.on_message(message, handle)

    rec.confirm = False
    s = mq.Session(rec.on_event, on_message=on_message, broker=url(broker))
    try:
        s.open_queue("/queue/d", read=True, write=True)
        s.post("/queue/d", b"x")
        rec.wait_messages(1)
    finally:
        s.stop()
    assert len(raised) == 4, raised
    for text, name in zip(raised, ("open_queue", "configure_queue", "close_queue", "stop")):
        assert text.startswith(name + " cannot be called from on_message"), text
        assert "deadlock" in text
    wait_for(lambda: queue_figures(broker, "/queue/d")["depth"] == 0, what="the confirm")


def test_bmq_uri_maps_to_a_queue(mq, broker):
    """bmq://DOMAIN/NAME is /queue/DOMAIN/NAME; a plain STOMP destination
    works as it is; other forms are refused with the accepted ones named."""
    rec = Recorder()
    with session(mq, broker, rec) as s:
        s.open_queue("bmq://my.domain/jobs", read=True, write=True)
        s.post("bmq://my.domain/jobs", b"x", on_ack=rec.on_ack)
        rec.wait_messages(1)
        assert rec.messages[0].queue_uri == "bmq://my.domain/jobs"
        assert queue_figures(broker, "/queue/my.domain/jobs")["consumers"] == 1
        for bad in ("bmq://dom", "bmq://dom/q?id=app", "jobs", "http://x/y"):
            with pytest.raises(mq.Error, match="expected bmq://DOMAIN/NAME"):
                s.open_queue(bad, write=True)


def test_requests_that_fail(mq, broker):
    """Clear errors: posting to a queue not open for writing, opening for
    reading without on_message, opening twice, an option out of range,
    suspends_on_bad_host_health without a monitor, anything after stop."""
    rec = Recorder()
    s = mq.Session(rec.on_event, broker=url(broker))
    with pytest.raises(mq.Error, match="not open for writing"):
        s.post("/queue/none", b"x")
    with pytest.raises(mq.Error, match="no on_message callback"):
        s.open_queue("/queue/r", read=True)
    s.open_queue("/queue/w", write=True)
    with pytest.raises(mq.Error, match="already open"):
        s.open_queue("/queue/w", write=True)
    with pytest.raises(mq.Error, match="max_unconfirmed_messages"):
        s.open_queue("/queue/x", write=True, options=mq.QueueOptions(max_unconfirmed_messages=-1))
    with pytest.raises(mq.Error, match="host_health_monitor"):
        s.open_queue("/queue/y", write=True, options=mq.QueueOptions(suspends_on_bad_host_health=True))
    with pytest.raises(TypeError):
        s.post("/queue/w", "text, not bytes")
    s.stop()
    s.stop()  # twice is fine
    with pytest.raises(mq.Error, match="stopped"):
        s.open_queue("/queue/z", write=True)
    with pytest.raises(mq.Error):
        s.post("/queue/w", b"x")


def test_open_refused_by_the_broker(mq, make_broker):
    """A subscription the broker refuses raises Error with the broker's
    reason (and the session reconnects on its own afterwards)."""
    b = make_broker()
    rec = Recorder()
    with session(mq, b, rec) as s:
        with pytest.raises(mq.Error, match="pubsub"):
            s.open_queue("/pubsub/fan", read=True)
        rec.wait_event(mq.session_events.StateRestored)
        s.open_queue("/queue/after", write=True)
        s.post("/queue/after", b"x", on_ack=rec.on_ack)
        rec.wait_acks(1)
        assert rec.acks[0].status == mq.AckStatus.SUCCESS


def test_get_queue_options_and_configure(mq, broker):
    """Defaults as in BlazingMQ; configure changes only what it names."""
    rec = Recorder()
    with session(mq, broker, rec) as s:
        s.open_queue("/queue/o", read=True)
        assert s.get_queue_options("/queue/o") == mq.QueueOptions(1024, 33554432, 0, False)
        s.configure_queue("/queue/o", mq.QueueOptions(consumer_priority=5))
        assert s.get_queue_options("/queue/o") == mq.QueueOptions(1024, 33554432, 5, False)


def test_connect_failure_raises(mq):
    """No broker: the constructor raises Error naming the address once the
    connect timeout has passed."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    rec = Recorder()
    with pytest.raises(mq.Error, match=f"127.0.0.1:{port}"):
        mq.Session(rec.on_event, broker=f"tcp://127.0.0.1:{port}", timeout=mq.Timeouts(connect_timeout=0.5))
    assert any(isinstance(e, mq.session_events.ConnectionTimeout) for e in rec.events)


def test_failover_to_the_second_broker(mq, make_broker):
    """Two addresses, the first dead: the session connects to the second."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    b = make_broker()
    rec = Recorder()
    with mq.Session(rec.on_event, broker=[f"tcp://127.0.0.1:{dead}", url(b)]) as s:
        s.open_queue("/queue/f", write=True)
        s.post("/queue/f", b"x", on_ack=rec.on_ack)
        rec.wait_acks(1)
    assert rec.acks[0].status == mq.AckStatus.SUCCESS
    assert f"127.0.0.1:{b.port}" in repr(rec.events[0])


def test_log_session_event(mq, broker, caplog):
    """session_events.log_session_event logs through the logging module."""
    import logging
    caplog.set_level(logging.INFO, logger="mqclient.session_events")
    with mq.Session(mq.session_events.log_session_event, broker=url(broker)):
        pass
    text = caplog.text
    assert "Received session event: <Connected" in text
    assert "Received session event: <Disconnected" in text


def test_tls_from_the_environment(mq, make_broker, tmp_path, monkeypatch):
    """Over TLS, configured as for the C library through MQ_CLIENT_*: the
    broker is verified against the CA, and the client certificate's CN
    is the login the broker sees."""
    from mqtest import Control
    from test_operations import make_ca, make_cert
    pki = str(tmp_path)
    make_ca(pki, "testca")
    make_cert(pki, "testca", "localhost", san="localhost")
    make_cert(pki, "testca", "py-agent")
    import os
    b = make_broker("-k", os.path.join(pki, "localhost.pem"), "-a", os.path.join(pki, "testca.pem"))
    monkeypatch.setenv("MQ_CLIENT_CA_CHAIN", os.path.join(pki, "testca.pem"))
    monkeypatch.setenv("MQ_CLIENT_CERT_KEY", os.path.join(pki, "py-agent.pem"))
    monkeypatch.setenv("MQ_CLIENT_SERVER_NAME", "localhost")
    rec = Recorder()
    with mq.Session(rec.on_event, broker=f"tcp://127.0.0.1:{b.info['tls_port']}") as s:
        s.open_queue("/queue/tls", write=True)
        s.post("/queue/tls", b"x", on_ack=rec.on_ack)
        rec.wait_acks(1)
        assert rec.acks[0].status == mq.AckStatus.SUCCESS
        assert "py-agent" in [c["login"] for c in Control(b).ok("list clients")]
    monkeypatch.setenv("MQ_CLIENT_SERVER_NAME", "not-the-broker")
    with pytest.raises(mq.Error, match="hostname mismatch"):
        mq.Session(rec.on_event, broker=f"tcp://127.0.0.1:{b.info['tls_port']}",
                   timeout=mq.Timeouts(connect_timeout=1))
