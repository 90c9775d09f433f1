"""Queue policies: delivery limits and dead letters, expiry, bounded queues,
the memory high-watermark, durable topic subscriptions, temporary queues."""
import threading
import time

from mqtest import Control, Raw, client, wait_for


def vmhwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_nack_past_the_limit_lands_in_the_dead_letter_queue(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/work max-deliveries=3")
    p, _ = client(broker)
    p.send("/queue/work", "poison", headers={"job": "7"})
    c, rec = client(broker)
    c.subscribe("/queue/work", id="1", ack="client-individual")
    for n in range(1, 4):
        m = rec.wait_messages(n)[n - 1]
        assert m.headers["delivery-count"] == str(n)
        c.nack(m.headers["ack"])
    time.sleep(0.2)
    assert len(rec.messages) == 3  # never a fourth time
    d, drec = client(broker)
    d.subscribe("/queue/DLQ.work", id="1")
    m = drec.wait_messages(1)[0]
    assert m.body == "poison" and m.headers["job"] == "7"
    assert m.headers["original-destination"] == "/queue/work"
    assert m.headers["dead-letter-reason"] == "delivered 3 times (max-deliveries 3)"
    assert m.headers["original-message-id"] == rec.messages[0].headers["message-id"]
    assert ctl.ok("show /queue/work")["dead_lettered"] == 1
    assert ctl.ok("stats")["dead_lettered"] == 1
    for x in (p, c, d):
        x.disconnect()


def test_disconnects_count_as_deliveries(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/crashy max-deliveries=2 dead-letter=/queue/graveyard")
    p, _ = client(broker)
    p.send("/queue/crashy", "m")
    for _ in range(2):
        c, rec = client(broker)
        c.subscribe("/queue/crashy", id="1", ack="client")
        rec.wait_messages(1)
        c.disconnect()  # without acknowledging
    wait_for(lambda: ctl.ok("show /queue/graveyard")["depth"] == 1, what="dead letter")
    assert ctl.ok("show /queue/crashy")["depth"] == 0
    p.disconnect()


def test_dead_letter_none_drops(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/nodl max-deliveries=1 dead-letter=none")
    p, _ = client(broker)
    p.send("/queue/nodl", "m")
    c, rec = client(broker)
    c.subscribe("/queue/nodl", id="1", ack="client-individual")
    c.nack(rec.wait_messages(1)[0].headers["ack"], receipt="n")
    rec.wait_receipt("n")
    s = ctl.ok("show /queue/nodl")
    assert s["depth"] == 0 and s["dropped"] == 1 and s["dead_letter"] is None
    assert ctl.call("show /queue/DLQ.nodl")["status"] == 404
    p.disconnect()
    c.disconnect()


def test_show_names_the_dead_letter_queue(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/orders")
    ctl.ok("create queue /queue/jobs dead-letter=/queue/failed")
    assert ctl.ok("show /queue/orders")["dead_letter"] == "/queue/DLQ.orders"
    assert ctl.ok("show /queue/jobs")["dead_letter"] == "/queue/failed"


def test_redrive_moves_dead_letters_back(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/rd max-deliveries=1")
    p, _ = client(broker)
    for i in range(3):
        p.send("/queue/rd", str(i))
    c, rec = client(broker)
    c.subscribe("/queue/rd", id="1", ack="client-individual")
    for m in rec.wait_messages(3):
        c.nack(m.headers["ack"])
    wait_for(lambda: ctl.ok("show /queue/DLQ.rd")["depth"] == 3, what="3 dead letters")
    c.unsubscribe("1", headers={"receipt": "u"})
    rec.wait_receipt("u")
    assert ctl.ok("redrive /queue/DLQ.rd")["moved"] == 3
    assert ctl.ok("show /queue/DLQ.rd")["depth"] == 0
    c2, rec2 = client(broker)
    c2.subscribe("/queue/rd", id="2")
    msgs = rec2.wait_messages(3)
    assert sorted(m.body for m in msgs) == ["0", "1", "2"]
    assert all("dead-letter-reason" not in m.headers for m in msgs)
    for x in (p, c, c2):
        x.disconnect()


def test_expired_messages_are_never_delivered(broker):
    ctl = Control(broker)
    p, _ = client(broker)
    now_ms = int(time.time() * 1000)
    p.send("/queue/exp", "stale", headers={"expires": str(now_ms - 1000)})
    p.send("/queue/exp", "soon", headers={"expires": str(now_ms + 300)})
    p.send("/queue/exp", "relative", headers={"expiration": "300"})
    p.send("/queue/exp", "fresh", headers={"expires": str(now_ms + 60000)})
    p.send("/queue/exp", "forever", receipt="r")
    time.sleep(0.6)
    c, rec = client(broker)
    c.subscribe("/queue/exp", id="1")
    rec.wait_messages(2)
    time.sleep(0.1)
    assert rec.bodies() == ["fresh", "forever"]
    assert ctl.ok("stats")["expired"] == 3
    p.disconnect()
    c.disconnect()


def test_message_expired_by_its_own_header_reaches_the_dead_letter_queue(broker):
    """The dead letter does not keep the expiry that killed it (it would die on arrival)."""
    ctl = Control(broker)
    ctl.ok("create queue /queue/short dead-letter=/queue/expired")
    p, prec = client(broker)
    p.send("/queue/short", "late", headers={"expiration": "50"}, receipt="r")
    prec.wait_receipt("r")
    time.sleep(0.2)
    c, rec = client(broker)
    c.subscribe("/queue/short", id="1")  # delivery finds it expired
    c.subscribe("/queue/expired", id="2")
    m = rec.wait_messages(1)[0]
    assert m.body == "late" and m.headers["dead-letter-reason"] == "expired"
    assert ctl.ok("show /queue/short")["dead_lettered"] == 1
    p.disconnect()
    c.disconnect()


def test_queue_ttl_and_rabbitmq_alias(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/ttl ttl=300ms")
    ctl.ok("create queue /queue/xttl x-message-ttl=300")
    assert ctl.ok("show /queue/xttl")["ttl_ms"] == 300
    p, prec = client(broker)
    for q in ("/queue/ttl", "/queue/xttl"):
        p.send(q, "old")
    time.sleep(0.5)
    for q in ("/queue/ttl", "/queue/xttl"):
        p.send(q, "new")
    p.send("/queue/xttl", "x", receipt="r")
    prec.wait_receipt("r")
    c, rec = client(broker)
    c.subscribe("/queue/ttl", id="1")
    rec.wait_messages(1)
    time.sleep(0.1)
    assert rec.bodies() == ["new"]
    assert ctl.ok("show /queue/ttl")["expired"] == 1
    p.disconnect()
    c.disconnect()


def test_expired_head_swept_without_consumers(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/sweep ttl=200ms dead-letter=/queue/expired-jobs")
    p, prec = client(broker)
    for i in range(5):
        p.send("/queue/sweep", str(i))
    p.send("/queue/sweep", "5", receipt="r")
    prec.wait_receipt("r")
    # no consumer ever looks: the broker's tick sweeps the head
    wait_for(lambda: ctl.ok("show /queue/sweep")["depth"] == 0, timeout=5, what="sweep")
    d = ctl.ok("show /queue/expired-jobs")
    assert d["depth"] == 6
    c, rec = client(broker)
    c.subscribe("/queue/expired-jobs", id="1")
    assert rec.wait_messages(6)[0].headers["dead-letter-reason"] == "expired"
    p.disconnect()
    c.disconnect()


def test_overflow_drop_oldest(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/bounded max-length=3")
    p, prec = client(broker)
    for i in range(5):
        p.send("/queue/bounded", str(i))
    p.send("/queue/bounded", "5", receipt="r")
    prec.wait_receipt("r")
    s = ctl.ok("show /queue/bounded")
    assert s["depth"] == 3 and s["dropped"] == 3
    c, rec = client(broker)
    c.subscribe("/queue/bounded", id="1")
    rec.wait_messages(3)
    assert rec.bodies() == ["3", "4", "5"]
    p.disconnect()
    c.disconnect()


def test_overflow_drop_oldest_to_dead_letters_when_set(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/bdl max-length=2 dead-letter=/queue/spill")
    p, prec = client(broker)
    for i in range(4):
        p.send("/queue/bdl", str(i))
    p.send("/queue/bdl", "x", receipt="r")
    prec.wait_receipt("r")
    assert ctl.ok("show /queue/spill")["depth"] == 3
    p.disconnect()


def test_queues_that_dead_letter_into_each_other_do_not_loop(broker):
    """Dead-lettering goes one hop: a dead letter that would be dead-lettered
    again on arrival is dropped, not bounced between the two forever."""
    ctl = Control(broker)
    ctl.ok("create queue /queue/ping max-length=1 dead-letter=/queue/pong")
    ctl.ok("create queue /queue/pong max-length=1 dead-letter=/queue/ping")
    p, prec = client(broker)
    for i in range(3):
        p.send("/queue/ping", str(i), receipt=f"r{i}")
        prec.wait_receipt(f"r{i}", timeout=5)
    ping, pong = ctl.ok("show /queue/ping"), ctl.ok("show /queue/pong")
    assert ping["depth"] == 1 and pong["depth"] == 1
    assert ping["dead_lettered"] == 2 and pong["dropped"] == 1
    p.disconnect()


def test_overflow_reject(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/strict max-length=2 overflow=reject")
    r = Raw(broker)
    r.connect()
    for i in range(2):
        r.frame("SEND", {"destination": "/queue/strict", "receipt": str(i)}, "x")
        assert r.recv()["command"] == "RECEIPT"
    r.frame("SEND", {"destination": "/queue/strict", "receipt": "3"}, "x")
    e = r.expect_error("queue /queue/strict is full: 2 messages (max-length 2)")
    assert e["headers"]["receipt-id"] == "3"
    assert ctl.ok("show /queue/strict")["depth"] == 2
    assert ctl.ok("stats")["rejected"] == 1


def test_overflow_by_bytes(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/bytes max-bytes=250 overflow=reject")
    r = Raw(broker)
    r.connect()
    for i in range(2):
        r.frame("SEND", {"destination": "/queue/bytes", "receipt": str(i)}, "x" * 100)
        assert r.recv()["command"] == "RECEIPT"
    r.frame("SEND", {"destination": "/queue/bytes", "receipt": "3"}, "x" * 100)
    r.expect_error("queue /queue/bytes is full: 200 bytes (max-bytes 250)")


def test_memory_high_watermark_slows_producers(make_broker):
    watermark = 24 << 20
    # ASan keeps freed memory in quarantine: turn that off so that RSS
    # means what it means in a normal build.
    b = make_broker("-o", f"memory_high_watermark={watermark}",
                    env={"ASAN_OPTIONS": "detect_leaks=1:exitcode=66:quarantine_size_mb=0:thread_local_quarantine_size_kb=0"})
    ctl = Control(b)
    baseline = vmhwm(b.proc.pid)
    body = "x" * 65536
    sent = []

    def produce():
        p, prec = client(b)
        for i in range(1500):  # ~96 MiB, four times the watermark
            p.send("/queue/flood", body)
            sent.append(i)
        p.send("/queue/flood", "end", receipt="end")
        prec.wait_receipt("end", timeout=120)
        p.disconnect()

    t = threading.Thread(target=produce)
    t.start()
    wait_for(lambda: ctl.ok("stats")["memory_alarm"], timeout=30, what="the memory alarm")
    stalled = len(sent)
    time.sleep(0.5)
    assert ctl.ok("stats")["memory_alarm"]
    # a consumer drains; the producer goes on as memory comes back
    c, rec = client(b)
    c.subscribe("/queue/flood", id="1", ack="client-individual", headers={"max-unconfirmed-messages": "50"})

    def drain():
        acked = 0
        while True:
            with rec.cond:
                rec.cond.wait_for(lambda: len(rec.messages) > acked, 60)
                batch = rec.messages[acked:]
            for m in batch:
                c.ack(m.headers["ack"])
            acked += len(batch)
            if batch and batch[-1].body == "end":
                return

    drain()
    t.join(60)
    assert not t.is_alive()
    assert len(rec.messages) == 1501
    assert stalled < 1500
    log = b.read_log()
    assert "over the high-watermark" in log
    assert "reading from producers again" in log
    # RSS stayed under the watermark plus the documented slack (docs/protocol.md)
    slack = 24 << 20
    assert vmhwm(b.proc.pid) - baseline < watermark + slack
    c.disconnect()


def test_durable_subscription_misses_nothing_while_away(broker):
    ctl = Control(broker)
    sub, rec = client(broker, headers={"client-id": "auditor"})
    sub.subscribe("/topic/audit", id="a", ack="client-individual",
                  headers={"activemq.subscriptionName": "trail", "receipt": "s"})
    rec.wait_receipt("s")
    p, prec = client(broker)
    p.send("/topic/audit", "1")
    m = rec.wait_messages(1)[0]
    assert m.headers["destination"] == "/topic/audit"
    sub.ack(m.headers["ack"])
    sub.disconnect()
    for i in (2, 3, 4):
        p.send("/topic/audit", str(i))
    p.send("/topic/audit", "5", receipt="r")
    prec.wait_receipt("r")
    durables = ctl.ok("list durables")
    assert durables[0]["name"] == "auditor:trail" and durables[0]["depth"] == 4
    assert durables[0]["topic"] == "/topic/audit" and not durables[0]["active"]
    sub2, rec2 = client(broker, headers={"client-id": "auditor"})
    sub2.subscribe("/topic/audit", id="a", headers={"activemq.subscriptionName": "trail"})
    rec2.wait_messages(4)
    assert rec2.bodies() == ["2", "3", "4", "5"]
    # UNSUBSCRIBE with the durable name ends it
    sub2.unsubscribe("a", headers={"activemq.subscriptionName": "trail", "receipt": "u"})
    rec2.wait_receipt("u")
    assert ctl.ok("list durables") == []
    p.disconnect()
    sub2.disconnect()


def test_durable_subscription_rabbitmq_and_artemis_spellings(broker):
    ctl = Control(broker)
    a, ra = client(broker, headers={"client-id": "rmq"})
    a.subscribe("/topic/t1", id="sub-rmq", headers={"persistent": "true", "receipt": "1"})
    ra.wait_receipt("1")
    b, rb = client(broker, headers={"client-id": "art"})
    b.subscribe("/topic/t1", id="x", headers={"durable-subscription-name": "named", "receipt": "2"})
    rb.wait_receipt("2")
    a.disconnect()
    b.disconnect()
    p, prec = client(broker)
    p.send("/topic/t1", "while away", receipt="r")
    prec.wait_receipt("r")
    names = sorted(d["name"] for d in ctl.ok("list durables"))
    assert names == ["art:named", "rmq:sub-rmq"]
    ctl.ok("unsubscribe rmq:sub-rmq")
    assert [d["name"] for d in ctl.ok("list durables")] == ["art:named"]
    assert ctl.call("unsubscribe nobody:none")["status"] == 404
    p.disconnect()


def test_plain_topic_subscription_still_loses_messages_while_away(broker):
    c, rec = client(broker)
    c.subscribe("/topic/plain", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    c.disconnect()
    p, prec = client(broker)
    p.send("/topic/plain", "lost", receipt="r")
    prec.wait_receipt("r")
    c2, rec2 = client(broker)
    c2.subscribe("/topic/plain", id="1")
    time.sleep(0.2)
    assert rec2.messages == []
    p.disconnect()
    c2.disconnect()


def test_request_reply_through_a_temporary_queue(broker):
    ctl = Control(broker)
    server, srec = client(broker)
    server.subscribe("/queue/requests", id="s")
    requester, rrec = client(broker)
    requester.subscribe("/temp-queue/replies", id="r", headers={"receipt": "sub"})
    rrec.wait_receipt("sub")
    requester.send("/queue/requests", "2+2?", headers={"reply-to": "/temp-queue/replies", "correlation-id": "q1"})
    req = srec.wait_messages(1)[0]
    reply_to = req.headers["reply-to"]
    assert reply_to.startswith("/temp-queue/c") and reply_to.endswith(".replies")
    server.send(reply_to, "4", headers={"correlation-id": req.headers["correlation-id"]})
    reply = rrec.wait_messages(1)[0]
    assert reply.body == "4" and reply.headers["correlation-id"] == "q1"
    assert reply.headers["destination"] == "/temp-queue/replies"
    assert any(d["name"] == reply_to for d in ctl.ok("list queues"))
    requester.disconnect()
    # the queue went with its connection; late replies are dropped quietly
    wait_for(lambda: all(d["name"] != reply_to for d in ctl.ok("list queues")), what="temp queue gone")
    server.send(reply_to, "late", receipt="late")
    srec.wait_receipt("late")
    assert all(d["name"] != reply_to for d in ctl.ok("list queues"))
    server.disconnect()


def test_durable_queue_names_are_reserved(broker):
    """/durable/ names are reached through their topic only: a client that
    names one (even its own) is refused, so a topic can never feed itself."""
    r = Raw(broker)
    r.connect(**{"client-id": "X"})
    r.frame("SUBSCRIBE", {"id": "1", "destination": "/durable/X:s", "activemq.subscriptionName": "s"})
    r.expect_error("names under /durable/ belong to durable topic subscriptions")
    r = Raw(broker)
    r.connect()
    r.frame("SEND", {"destination": "/durable/X:s"}, "x")
    r.expect_error("names under /durable/ belong to durable topic subscriptions")
    # the durable subscription itself still works
    c, rec = client(broker, headers={"client-id": "X"})
    c.subscribe("/topic/news", id="1", headers={"activemq.subscriptionName": "s", "receipt": "r"})
    rec.wait_receipt("r")
    assert [d["name"] for d in Control(broker).ok("list durables")] == ["X:s"]
    c.disconnect()


def test_temporary_queue_is_private_to_its_connection(broker):
    owner, orec = client(broker)
    owner.subscribe("/temp-queue/r", id="1", headers={"receipt": "s"})
    orec.wait_receipt("s")
    name = [d["name"] for d in Control(broker).ok("list queues") if d["name"].startswith("/temp-queue/c")][0]
    thief = Raw(broker)
    thief.connect()
    thief.frame("SUBSCRIBE", {"id": "1", "destination": name})
    thief.expect_error("that temporary queue belongs to another connection")
    # squatting a name before its owner exists is refused the same way
    squat = Raw(broker)
    squat.connect()
    squat.frame("SUBSCRIBE", {"id": "1", "destination": "/temp-queue/c999999.reply"})
    squat.expect_error("belongs to another connection")
    # an administrator may still delete it: the owner is told, nothing breaks
    Control(broker).ok(f"delete {name} force")
    assert "deleted by an administrator" in orec.wait_error().headers["message"]
    owner, orec = client(broker)
    owner.subscribe("/temp-queue/r", id="1", headers={"receipt": "s2"})
    orec.wait_receipt("s2")
    name = [d["name"] for d in Control(broker).ok("list queues") if d["name"].startswith("/temp-queue/c")][0]
    # anyone may still reply to it
    p, prec = client(broker)
    p.send(name, "answer", receipt="a")
    prec.wait_receipt("a")
    assert orec.wait_messages(1)[0].body == "answer"
    owner.disconnect()
    p.disconnect()


def test_redrive_keeps_what_it_cannot_deliver(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/DLQ.x")
    p, prec = client(broker)
    # a forged origin naming a reserved queue, and one naming a topic
    p.send("/queue/DLQ.x", "a", headers={"original-destination": "/durable/c:n"})
    p.send("/queue/DLQ.x", "b", headers={"original-destination": "/topic/nobody"}, receipt="r")
    prec.wait_receipt("r")
    r = ctl.ok("redrive /queue/DLQ.x")
    assert r["moved"] == 0 and r["kept"] == 2
    r = ctl.call("redrive /queue/DLQ.x /topic/nobody")
    assert r["status"] == 422 and "keeps nothing" in r["message"]
    assert ctl.ok("show /queue/DLQ.x")["depth"] == 2
    p.disconnect()


def test_dead_letter_option_refuses_what_cannot_hold_dead_letters(broker):
    ctl = Control(broker)
    for bad in ("/durable/q", "/temp-queue/zz", "/command/shutdown", "/queue/"):
        r = ctl.call(f"create queue /queue/dl dead-letter={bad}")
        assert r["status"] == 422 and "cannot hold dead letters" in r["message"], r


def test_deleting_a_topic_with_durable_subscriptions(broker):
    ctl = Control(broker)
    c, rec = client(broker, headers={"client-id": "keeper"})
    c.subscribe("/topic/kept", id="1", headers={"activemq.subscriptionName": "s", "receipt": "r"})
    rec.wait_receipt("r")
    c.unsubscribe("1")
    r = ctl.call("delete /topic/kept")
    assert r["status"] == 409 and "1 durable subscription" in r["message"]
    ctl.ok("delete /topic/kept force")
    assert ctl.ok("list durables") == []
    c.disconnect()
