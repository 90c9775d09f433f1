"""What consumers of a work queue ask for: selectors, browsing, message
groups, a single active consumer, through stomp.py and raw frames."""
import time

from mqtest import Control, Raw, client, wait_for


def sub(b, dest, sid="s", **headers):
    """A raw subscriber with client-individual acks; returns it connected."""
    r = Raw(b)
    r.connect()
    h = {"id": sid, "destination": dest, "ack": "client-individual", "receipt": "sub-" + sid}
    h.update(headers)
    r.frame("SUBSCRIBE", h)
    f = r.recv()
    assert f["command"] == "RECEIPT", f
    return r


def drain(r, timeout=0.5):
    """Every MESSAGE that arrives within timeout of the last one."""
    out = []
    while True:
        try:
            f = r.recv(timeout=timeout)
        except TimeoutError:
            return out
        if f["command"] == "MESSAGE":
            out.append(f)


def send_all(b, dest, msgs):
    conn, rec = client(b)
    for i, (body, headers) in enumerate(msgs):
        conn.send(dest, body, headers=headers, receipt=f"r{i}")
    rec.wait_receipt(f"r{len(msgs) - 1}")
    conn.disconnect()


# ---- selectors ----

def test_render_farm_selector_takes_only_its_jobs(make_broker):
    """A worker with `renderer = 'karma' AND frames < 100` takes only those;
    a worker without a selector takes the rest."""
    b = make_broker()
    karma = sub(b, "/queue/jobs", "k", selector="renderer = 'karma' AND frames < 100")
    other = sub(b, "/queue/jobs", "o", selector="NOT (renderer = 'karma' AND frames < 100)")
    jobs = [(f"job{i}", {"renderer": r, "frames": str(n)})
            for i, (r, n) in enumerate([("karma", 10), ("mantra", 10), ("karma", 500), ("karma", 99)])]
    send_all(b, "/queue/jobs", jobs)
    got_k = sorted(f["body"].decode() for f in drain(karma))
    got_o = sorted(f["body"].decode() for f in drain(other))
    assert got_k == ["job0", "job3"], got_k
    assert got_o == ["job1", "job2"], got_o


def test_jms_specification_examples(make_broker):
    b = make_broker()
    cases = [
        ("JMSType = 'car' AND color = 'blue' AND weight > 2500",
         {"type": "car", "color": "blue", "weight": "3000"}, {"type": "car", "color": "blue", "weight": "2000"}),
        ("age BETWEEN 15 AND 19", {"age": "17"}, {"age": "20"}),
        ("Country IN ('UK', 'US', 'France')", {"Country": "UK"}, {"Country": "Peru"}),
        ("phone LIKE '12%3'", {"phone": "1234563"}, {"phone": "1234"}),
        ("word LIKE '#_%' ESCAPE '#'", {"word": "_foo"}, {"word": "bar"}),
        ("prop_name IS NULL", {}, {"prop_name": "x"}),
        ("JMSPriority > 4", {"priority": "9"}, {"priority": "1"}),
    ]
    for n, (sel, yes, no) in enumerate(cases):
        dest = f"/queue/jms{n}"
        r = sub(b, dest, selector=sel)
        send_all(b, dest, [("no", no), ("yes", yes)])
        got = [f["body"].decode() for f in drain(r, 0.3)]
        assert got == ["yes"], (sel, got)
        r.close()


def test_bad_selector_names_the_position(make_broker):
    b = make_broker()
    r = Raw(b)
    r.connect()
    r.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/x", "selector": "frames < "})
    e = r.expect_error("invalid selector in SUBSCRIBE frame")
    assert "at character" in e["headers"]["message"], e


def test_unmatched_message_waits_without_blocking_the_rest(make_broker):
    """A message no consumer's selector matches is kept until one comes that
    does, and the messages behind it still flow meanwhile."""
    b = make_broker()
    worker = sub(b, "/queue/q", "w", selector="kind = 'b'")
    send_all(b, "/queue/q", [("a1", {"kind": "a"}), ("b1", {"kind": "b"}), ("b2", {"kind": "b"})])
    assert [f["body"] for f in drain(worker)] == [b"b1", b"b2"]
    ctl = Control(b)
    q = ctl.ok("show /queue/q")
    assert q["depth"] == 1 and q["waiting_for_selector"] == 1, q
    late = sub(b, "/queue/q", "l", selector="kind = 'a'")
    assert [f["body"] for f in drain(late)] == [b"a1"]


def test_topic_subscriber_receives_only_what_matches(make_broker):
    b = make_broker()
    r = sub(b, "/topic/t", selector="level = 'error'", ack="auto")
    send_all(b, "/topic/t", [("i", {"level": "info"}), ("e", {"level": "error"})])
    assert [f["body"] for f in drain(r)] == [b"e"]
    assert Control(b).ok("stats")["dropped_slow"] == 0


# ---- browsing ----

def test_browse_sees_the_queue_without_consuming(make_broker):
    b = make_broker()
    send_all(b, "/queue/look", [(f"m{i}", {"n": str(i)}) for i in range(5)])
    r = Raw(b)
    r.connect()
    r.frame("SUBSCRIBE", {"id": "br", "destination": "/queue/look", "browser": "true", "selector": "n >= 2"})
    frames = []
    while True:
        f = r.recv()
        assert f["command"] == "MESSAGE", f
        if f["headers"].get("browser") == "end":
            break
        frames.append(f["body"].decode())
    assert frames == ["m2", "m3", "m4"]
    r.frame("UNSUBSCRIBE", {"id": "br", "receipt": "u"})
    assert r.recv()["command"] == "RECEIPT"
    assert Control(b).ok("show /queue/look")["depth"] == 5
    # and a consumer still gets all five
    c = sub(b, "/queue/look")
    assert len(drain(c)) == 5


def test_browse_of_a_topic_is_refused(make_broker):
    b = make_broker()
    r = Raw(b)
    r.connect()
    r.frame("SUBSCRIBE", {"id": "br", "destination": "/topic/x", "browser": "true"})
    r.expect_error("browser:true is for queues")


# ---- message groups ----

def test_groups_stay_on_one_consumer_and_move_when_it_leaves(make_broker):
    b = make_broker()
    c1 = sub(b, "/queue/shots", "c1")
    c2 = sub(b, "/queue/shots", "c2")
    msgs = [(f"{g}{i}", {"JMSXGroupID": g}) for i in range(4) for g in ("A", "B")]
    send_all(b, "/queue/shots", msgs)
    got1, got2 = drain(c1), drain(c2)
    groups1 = {f["headers"]["JMSXGroupID"] for f in got1}
    groups2 = {f["headers"]["JMSXGroupID"] for f in got2}
    assert groups1 and groups2 and not groups1 & groups2, (groups1, groups2)
    for got in (got1, got2):
        bodies = [f["body"].decode() for f in got]
        assert bodies == sorted(bodies, key=lambda s: int(s[1:])), bodies   # in order
    groups = Control(b).ok("show /queue/shots")["groups"]
    assert {g["group"] for g in groups} == {"A", "B"}
    # each group's count is what its owner was given: four messages each
    assert sorted(g["messages"] for g in groups) == [4, 4], groups
    # c1 leaves without acking: its group and its messages go to c2, in order
    moved = [f["body"].decode() for f in got1]
    c1.close()
    again = [f["body"].decode() for f in drain(c2)]
    assert again == moved, (again, moved)


def test_group_alias_header(make_broker):
    b = make_broker()
    c1 = sub(b, "/queue/g2", "c1")
    c2 = sub(b, "/queue/g2", "c2")
    send_all(b, "/queue/g2", [(f"x{i}", {"message-group": "shot-7"}) for i in range(6)])
    n1, n2 = len(drain(c1)), len(drain(c2))
    assert sorted((n1, n2)) == [0, 6], (n1, n2)


# ---- single active consumer ----

def test_single_active_consumer_takes_over_in_order(make_broker):
    b = make_broker()
    ctl = Control(b)
    ctl.ok("create queue /queue/collect single-active-consumer=true")
    first = sub(b, "/queue/collect", "a")
    second = sub(b, "/queue/collect", "b")
    send_all(b, "/queue/collect", [("m1", {}), ("m2", {})])
    assert len(drain(first)) == 2 and drain(second, 0.2) == []
    subs = ctl.ok("show /queue/collect")["subscribers"]
    assert [s["active"] for s in subs] == [True, False]
    first.close()
    # the unacknowledged two go to the standby
    assert [f["body"] for f in drain(second)] == [b"m1", b"m2"]


def test_single_active_consumer_from_subscribe_header(make_broker):
    b = make_broker()
    a = sub(b, "/queue/sac", "a", **{"x-single-active-consumer": "true"})
    bb = sub(b, "/queue/sac", "b", **{"x-single-active-consumer": "true"})
    send_all(b, "/queue/sac", [("m", {})])
    assert len(drain(a)) == 1 and drain(bb, 0.2) == []
    assert Control(b).ok("show /queue/sac")["single_active_consumer"] is True
    r = Raw(b)
    r.connect()
    Control(b).ok("create queue /queue/plain")
    r.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/plain", "x-single-active-consumer": "true"})
    r.expect_error("exists without single-active-consumer")


def test_priority_picks_the_active_consumer(make_broker):
    b = make_broker()
    Control(b).ok("create queue /queue/prio single-active-consumer=true")
    low = sub(b, "/queue/prio", "low")
    high = sub(b, "/queue/prio", "high", **{"consumer-priority": "10"})
    send_all(b, "/queue/prio", [("m", {})])
    assert len(drain(high)) == 1 and drain(low, 0.2) == []


# ---- across a restart ----

def test_persistent_queue_keeps_group_order_and_options_across_restart(make_broker):
    b = make_broker()
    ctl = Control(b)
    ctl.ok("create queue /queue/p persistent single-active-consumer=true")
    send_all(b, "/queue/p", [(f"{g}{i}", {"JMSXGroupID": g, "persistent": "true"}) for i in range(3) for g in "AB"])
    ctl.close()
    b.restart()
    assert Control(b).ok("show /queue/p")["single_active_consumer"] is True
    c = sub(b, "/queue/p")
    got = [f["body"].decode() for f in drain(c)]
    for g in "AB":
        assert [x for x in got if x[0] == g] == [f"{g}{i}" for i in range(3)], got
