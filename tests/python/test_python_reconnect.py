"""Reconnection across a broker restart: the broker is killed with
SIGKILL and started again on the same port and data directory; the
session reports ConnectionLost, Reconnected, QueueReopened and
StateRestored, sends again the posts that were waiting (with their
mq-post-id), delivers what the broker kept, and refuses to confirm what
arrived before the crash."""
import pytest

from pyhelp import Recorder, url


def test_restart_after_kill9_restores_queues_and_posts(mq, make_broker):
    b = make_broker()
    cons = Recorder(confirm=False)
    prod = Recorder()
    sc = mq.Session(cons.on_event, on_message=cons.on_message, broker=url(b))
    sp = mq.Session(prod.on_event, broker=url(b))
    try:
        sc.open_queue("/queue/crash", read=True, options=mq.QueueOptions(max_unconfirmed_messages=1))
        sp.open_queue("/queue/crash", write=True)
        # Before the crash: 20 persistent posts, all acknowledged; the
        # consumer holds one without confirming it (window of 1).
        for i in range(20):
            sp.post("/queue/crash", b"before %d" % i, on_ack=prod.on_ack)
        prod.wait_acks(20)
        assert all(a.status == mq.AckStatus.SUCCESS for a in prod.acks)
        cons.wait_messages(1)
        held = cons.messages[0]

        b.kill()
        cons.wait_event(mq.session_events.ConnectionLost)
        prod.wait_event(mq.session_events.ConnectionLost)
        # Posting while the broker is away: kept, sent once it is back.
        for i in range(5):
            sp.post("/queue/crash", b"during %d" % i, on_ack=prod.on_ack)
        # What arrived before the crash can no longer be confirmed.
        with pytest.raises(mq.Error, match="earlier connection"):
            sc.confirm(held)

        b.start()
        prod.wait_event(mq.session_events.StateRestored)
        cons.wait_event(mq.session_events.StateRestored)
        reopened = cons.wait_event(mq.session_events.QueueReopened)
        assert reopened.queue_uri == "/queue/crash"
        kinds = cons.kinds()
        i = kinds.index("ConnectionLost")
        assert kinds[i:i + 4] == ["ConnectionLost", "Reconnected", "QueueReopened", "StateRestored"], kinds
        prod.wait_acks(25)
        assert all(a.status == mq.AckStatus.SUCCESS for a in prod.acks), prod.acks

        # Every acknowledged post reaches the consumer; one that may have
        # gone twice is recognised by its mq-post-id.
        cons.confirm = True
        sc.configure_queue("/queue/crash", mq.QueueOptions(max_unconfirmed_messages=100))
        cons.wait(lambda: {m.data for m in cons.messages} >=
                  {b"before %d" % i for i in range(20)} | {b"during %d" % i for i in range(5)},
                  what="every acknowledged post")
        redelivered = [m for m in cons.messages[1:] if m.data == held.data]
        assert redelivered and redelivered[0].redelivered
        ids = {}
        for m in cons.messages:
            ids.setdefault(m.properties["mq-post-id"], set()).add(m.data)
        assert all(len(v) == 1 for v in ids.values()), "one post id, one body"
    finally:
        sp.stop()
        sc.stop()
    assert isinstance(cons.events[-1], mq.session_events.Disconnected)


def test_fail_instead_of_resend(mq, make_broker):
    """resend_on_reconnect=False: posts waiting when the connection drops
    are acknowledged UNKNOWN (the broker may or may not have them), and
    posting while away raises."""
    b = make_broker()
    rec = Recorder()
    with mq.Session(rec.on_event, broker=url(b), resend_on_reconnect=False) as s:
        s.open_queue("/queue/f", write=True)
        b.proc.send_signal(19)  # SIGSTOP: posts go out, no receipt comes back
        try:
            for i in range(3):
                s.post("/queue/f", b"x", on_ack=rec.on_ack)
            b.kill()
        finally:
            if b.proc:
                b.proc.send_signal(18)
        rec.wait_acks(3)
        assert [a.status for a in rec.acks] == [mq.AckStatus.UNKNOWN] * 3
        rec.wait_event(mq.session_events.ConnectionLost)
        with pytest.raises(mq.Error, match="not connected"):
            s.post("/queue/f", b"x", on_ack=rec.on_ack)
        b.start()
        rec.wait_event(mq.session_events.StateRestored)
        s.post("/queue/f", b"x", on_ack=rec.on_ack)
        rec.wait_acks(4)
        assert rec.acks[3].status == mq.AckStatus.SUCCESS
