"""Bridges between brokers (docs/bridges.md): at least once, never losing a
receipted message, duplicates detectable, loops impossible, visible.

Two real mqbrokers on loopback play the local and the remote side; the
RabbitMQ side is tests/integration/test_bridge_rabbitmq.py."""
import json
import os
import socket
import threading
import time

import pytest

from mqtest import Broker, Control, client, wait_for


def bridge_cfg(name, direction, src, dst, port, **extra):
    opts = "".join(f", {k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}"
                   for k, v in extra.items())
    return (f'{{ name = "{name}", direction = "{direction}", from = "{src}", to = "{dst}", '
            f'hosts = {{ "127.0.0.1:{port}" }}{opts} }}')


def config(*bridges, extra=""):
    return "bridges = {\n  " + ",\n  ".join(bridges) + "\n}\n" + extra


def send_receipted(broker, dest, n, start=0, headers=None, prefix="m"):
    """Sends n persistent messages with a receipt each; returns the bodies receipted."""
    c, rec = client(broker)
    got = []
    try:
        for i in range(start, start + n):
            h = {"persistent": "true", "receipt": f"r{i}"}
            h.update(headers or {})
            c.send(dest, f"{prefix}{i}", headers=h)
        rec.wait_receipt(f"r{start + n - 1}", timeout=20)
        got = [f"{prefix}{i}" for i in range(start, start + n) if f"r{i}" in rec.receipts]
    finally:
        c.disconnect()
    return got


def drain(broker, dest, expect, timeout=30):
    """Consumes (client-individual, acked) until `expect` distinct bodies arrived; returns all bodies seen."""
    c, rec = client(broker)
    c.subscribe(dest, id="d", ack="client-individual")
    seen = []
    end = time.time() + timeout
    try:
        while time.time() < end:
            with rec.cond:
                rec.cond.wait_for(lambda: rec.messages, 0.2)
                batch, rec.messages = rec.messages, []
            for m in batch:
                seen.append(m.body)
                c.ack(m.headers["message-id"], "d")
            if len(set(seen) & set(expect)) == len(set(expect)):
                # a little longer, to catch repeats still on their way
                time.sleep(0.3)
                with rec.cond:
                    batch, rec.messages = rec.messages, []
                for m in batch:
                    seen.append(m.body)
                    c.ack(m.headers["message-id"], "d")
                break
    finally:
        c.disconnect()
    return seen


def show(broker, name):
    ctl = Control(broker)
    try:
        return ctl.ok(f"show bridge {name}")
    finally:
        ctl.close()


def wait_bridge(broker, name, pred, what, timeout=15):
    return wait_for(lambda: (lambda r: r if pred(r) else None)(show(broker, name)), timeout=timeout,
                    interval=0.1, what=what)


def test_outbound_forwards_only_what_the_remote_receipted(make_broker):
    """Every receipted message reaches the remote; the local copy leaves the
    journal only once the remote's RECEIPT came back."""
    b = make_broker()
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port, window=20),
                                  extra='destinations = { { "/queue/out", persistent = true } }'))
    sent = send_receipted(a, "/queue/out", 300)
    assert len(sent) == 300
    r = wait_bridge(a, "ab", lambda r: r["acknowledged"] >= 300, "300 acknowledged")
    assert r["state"] == "running" and r["forwarded"] >= 300 and r["pending"] == 0
    assert r["remote_broker_id"] and r["node"] == f"127.0.0.1:{b.port}"
    seen = drain(b, "/queue/in", sent)
    assert sorted(set(seen)) == sorted(sent)
    ctl = Control(a)
    assert ctl.ok("show /queue/out")["depth"] == 0
    # acknowledged here in batches, then gone from the journal
    wait_for(lambda: ctl.ok("show /queue/out")["unacked"] == 0 and ctl.ok("stats")["journal_live_messages"] == 0,
             what="the journal emptied")
    ctl.close()


def test_messages_carry_a_post_id_and_the_brokers_they_left(make_broker):
    b = make_broker()
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port)))
    send_receipted(a, "/queue/out", 1, headers={"colour": "red"})
    c, rec = client(b)
    c.subscribe("/queue/in", id="1", ack="auto")
    m = rec.wait_messages(1)[0]
    a_id = Control(a).ok("stats")["broker_id"]
    assert m.headers["mq-via"] == a_id
    assert m.headers["mq-post-id"].startswith(a_id + "-")
    assert m.headers["colour"] == "red" and m.headers["persistent"] == "true"
    c.disconnect()


def test_remote_killed_and_restarted_loses_nothing(make_broker):
    """kill -9 of the remote in the middle: the bridge reconnects with back-off
    and sends again what had no RECEIPT; the remote's dedup window drops the
    repeats it had already taken."""
    b = make_broker(config='destinations = { { "/queue/in", persistent = true, dedup_window = "10m" } }')
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port, window=50,
                                             reconnect_min="50ms", reconnect_max="500ms", heartbeat="1s"),
                                  extra='destinations = { { "/queue/out", persistent = true } }'))
    sent = send_receipted(a, "/queue/out", 400)
    wait_bridge(a, "ab", lambda r: r["acknowledged"] >= 50, "some forwarded")
    b.kill()
    more = send_receipted(a, "/queue/out", 200, start=400)
    r = wait_bridge(a, "ab", lambda r: r["state"] in ("connecting", "failing"), "the bridge to notice")
    assert r["node"] == ""
    b.start()
    wait_bridge(a, "ab", lambda r: r["lag_messages"] == 0 and r["state"] == "running", "the backlog forwarded",
                timeout=30)
    seen = drain(b, "/queue/in", sent + more)
    assert set(sent + more) <= set(seen), f"lost: {sorted(set(sent + more) - set(seen))[:10]}"
    r = show(a, "ab")
    assert r["connects"] >= 2 and r["acknowledged"] >= 600
    # The window on /queue/in dropped the repeats the remote had taken before it died.
    assert len(seen) == len(set(seen)), "a repeat got through the dedup window"


def test_a_link_that_stays_down_is_failing_with_the_reason(make_broker):
    """An established link drops and the remote stays away: after the first
    reconnection attempt fails the bridge says failing, with that attempt's
    error, not connecting for ever; it runs again once the remote is back."""
    b = make_broker()
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port,
                                             reconnect_min="50ms", reconnect_max="200ms", heartbeat="1s")))
    wait_bridge(a, "ab", lambda r: r["state"] == "running", "the bridge running")
    b.kill()
    r = wait_bridge(a, "ab", lambda r: r["state"] == "failing", "the bridge failing")
    assert r["error"].startswith("reconnecting: ") and len(r["error"]) > len("reconnecting: "), r["error"]
    b.start()
    wait_bridge(a, "ab", lambda r: r["state"] == "running", "the bridge running again", timeout=30)
    send_receipted(a, "/queue/out", 3)
    assert len(drain(b, "/queue/in", ["m0", "m1", "m2"])) == 3


def test_lag_seconds_counts_the_time_waiting_in_the_queue(make_broker):
    """A paused outbound bridge: a message sent 2 s ago and still in the
    source queue is 2 s of lag, whether or not the bridge moved anything
    lately; resumed and confirmed, the lag is gone."""
    b = make_broker()
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port)))
    wait_bridge(a, "ab", lambda r: r["state"] == "running", "the bridge running")
    ctl = Control(a)
    ctl.ok("bridge pause ab")
    time.sleep(1.5)     # the bridge has moved nothing for a while: that is not the lag
    send_receipted(a, "/queue/out", 1)
    r = show(a, "ab")
    assert r["lag_messages"] == 1 and r["lag_seconds"] < 1.0, r
    time.sleep(2.0)
    r = show(a, "ab")
    assert 1.9 <= r["lag_seconds"] < 3.5, r
    ctl.ok("bridge resume ab")
    r = wait_bridge(a, "ab", lambda r: r["acknowledged"] >= 1 and r["lag_messages"] == 0, "the message confirmed")
    assert r["lag_seconds"] == 0, r
    ctl.close()


def test_local_broker_killed_and_restarted_sends_its_journal(make_broker):
    """kill -9 of the bridge's own broker: what it had receipted is in its
    journal and goes out after the restart, with the same mq-post-id."""
    b = make_broker(config='destinations = { { "/queue/in", persistent = true, dedup_window = "10m" } }')
    a = make_broker(config=config(bridge_cfg("ab", "out", "/queue/out", "/queue/in", b.port, window=10),
                                  extra='destinations = { { "/queue/out", persistent = true } }'))
    ctl = Control(a)
    ctl.ok("bridge pause ab")
    ctl.close()
    sent = send_receipted(a, "/queue/out", 150)
    a.kill()
    a.start()
    r = show(a, "ab")
    assert r["paused"] and r["state"] == "paused" and r["lag_messages"] == 150
    ctl = Control(a)
    ctl.ok("bridge resume ab")
    ctl.close()
    wait_bridge(a, "ab", lambda r: r["acknowledged"] >= 150, "the journal forwarded")
    assert show(a, "ab")["redelivered"] >= 150  # recovered messages count as redelivered
    seen = drain(b, "/queue/in", sent)
    assert sorted(set(seen)) == sorted(sent)


def test_inbound_confirms_upstream_once_held(make_broker):
    """An inbound bridge takes a remote queue into a local persistent one;
    the remote's copies are acknowledged once the local journal has them."""
    remote = make_broker()
    sent = send_receipted(remote, "/queue/src", 250)
    local = make_broker(config=config(bridge_cfg("in", "in", "/queue/src", "/queue/dst", remote.port, window=25),
                                      extra='destinations = { { "/queue/dst", persistent = true } }'))
    wait_bridge(local, "in", lambda r: r["acknowledged"] >= 250, "250 confirmed upstream")
    ctl = Control(remote)
    wait_for(lambda: ctl.ok("show /queue/src")["depth"] == 0 and ctl.ok("show /queue/src")["unacked"] == 0,
             what="the remote queue emptied")
    ctl.close()
    r = show(local, "in")
    assert r["direction"] == "in" and r["pending"] == 0 and r["forwarded"] == 250
    local.kill()  # held durably before it was confirmed: a crash now loses nothing
    local.start()
    seen = drain(local, "/queue/dst", sent)
    assert sorted(set(seen)) == sorted(sent)


def test_inbound_dedup_window_drops_repeats(make_broker):
    remote = make_broker()
    c, rec = client(remote)
    for i in range(5):
        c.send("/queue/src", "same", headers={"mq-post-id": "x-1", "receipt": f"r{i}"})
    c.send("/queue/src", "other", headers={"mq-post-id": "x-2", "receipt": "r9"})
    rec.wait_receipt("r9")
    c.disconnect()
    local = make_broker(config=config(bridge_cfg("in", "in", "/queue/src", "/queue/dst", remote.port, dedup="1m")))
    r = wait_bridge(local, "in", lambda r: r["acknowledged"] >= 6, "6 confirmed upstream")
    assert r["duplicates"] == 4 and r["forwarded"] == 2
    assert Control(local).ok("show /queue/dst")["depth"] == 2


def test_queue_dedup_window_option(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/d dedup-window=1m persistent")
    assert ctl.ok("show /queue/d")["depth"] == 0
    c, rec = client(broker)
    for i in range(3):
        c.send("/queue/d", f"b{i}", headers={"mq-post-id": "p-7", "receipt": f"r{i}"})
    c.send("/queue/d", "b9", headers={"receipt": "r9"})
    rec.wait_receipt("r9")
    c.disconnect()
    assert ctl.ok("show /queue/d")["depth"] == 2
    assert ctl.ok("stats")["duplicates"] == 2
    ctl.close()
    broker.restart()  # the option is topology: it survives
    ctl = Control(broker)
    c, rec = client(broker)
    c.send("/queue/d", "b10", headers={"mq-post-id": "p-8", "receipt": "a"})
    c.send("/queue/d", "b11", headers={"mq-post-id": "p-8", "receipt": "b"})
    rec.wait_receipt("b")
    c.disconnect()
    assert ctl.ok("show /queue/d")["depth"] == 3
    ctl.close()


def test_a_to_b_to_a_never_loops(make_broker):
    """Topics bridged both ways: each message reaches the other side once and
    never comes back; a message naming this broker in mq-via is dropped."""
    a = make_broker()
    b = make_broker(config=config(bridge_cfg("ba", "out", "/topic/news", "/topic/news", a.port)))
    a.stop()
    a.config = config(bridge_cfg("ab", "out", "/topic/news", "/topic/news", b.port))
    a.start()
    wait_bridge(a, "ab", lambda r: r["state"] == "running", "ab running")
    wait_bridge(b, "ba", lambda r: r["state"] == "running", "ba running")
    ca, ra = client(a)
    ca.subscribe("/topic/news", id="1")
    cb, rb = client(b)
    cb.subscribe("/topic/news", id="1")
    time.sleep(0.3)
    ca.send("/topic/news", "from-a", headers={"receipt": "x"})
    cb.send("/topic/news", "from-b", headers={"receipt": "y"})
    ra.wait_messages(2)
    rb.wait_messages(2)
    time.sleep(1.0)  # a loop would keep them coming
    assert sorted(ra.bodies()) == [b"from-a", b"from-b"] or sorted(ra.bodies()) == ["from-a", "from-b"]
    assert len(rb.messages) == 2
    ra_ = show(a, "ab")
    rb_ = show(b, "ba")
    assert ra_["looped"] == 1 and rb_["looped"] == 1
    assert ra_["forwarded"] == 1 and rb_["forwarded"] == 1
    ca.disconnect()
    cb.disconnect()
    # A message that says it left A, sent straight to A, is dropped as a loop.
    a_id = Control(a).ok("stats")["broker_id"]
    c, rec = client(a)
    c.send("/queue/q", "loop", headers={"mq-via": f"somewhere, {a_id}", "receipt": "z"})
    rec.wait_receipt("z")
    c.disconnect()
    ctl = Control(a)
    assert ctl.ok("stats")["looped"] == 1
    assert ctl.call("show /queue/q")["status"] == 404
    ctl.close()


def test_pattern_takes_destinations_created_later(make_broker):
    b = make_broker()
    a = make_broker(config=config(
        f'{{ name = "all", direction = "out", from = "/queue/jobs.*", hosts = "127.0.0.1:{b.port}" }}'))
    send_receipted(a, "/queue/jobs.eu", 3, prefix="eu")
    send_receipted(a, "/queue/other", 2, prefix="o")
    send_receipted(a, "/queue/jobs.us", 4, prefix="us")
    wait_bridge(a, "all", lambda r: r["acknowledged"] >= 7, "7 forwarded")
    ctl = Control(b)
    assert ctl.ok("show /queue/jobs.eu")["depth"] == 3
    assert ctl.ok("show /queue/jobs.us")["depth"] == 4
    assert ctl.call("show /queue/other")["status"] == 404
    ctl.close()
    subs = {s["destination"] for s in show(a, "all")["subscriptions"]}
    assert subs == {"/queue/jobs.eu", "/queue/jobs.us"}


def test_admin_commands_and_restart(make_broker):
    b = make_broker()
    a = make_broker()
    ctl = Control(a)
    assert ctl.call("list bridges")["message"] == "no bridges"
    r = ctl.call(f"bridge add x direction=out from=/queue/o to=/queue/i hosts=127.0.0.1:{b.port} "
                 "window=5 send-header=x-queue-type:quorum passcode=secret login=me")
    assert r["ok"], r
    assert r["data"]["name"] == "x" and ["passcode", "(set)"] in r["data"]["words"]
    bad = ctl.call("bridge add x direction=out from=/queue/o hosts=127.0.0.1:1")
    assert bad["status"] == 409 and "exists already" in bad["message"]
    bad = ctl.call("bridge add y direction=sideways from=/queue/o hosts=127.0.0.1:1")
    assert bad["status"] == 422 and "direction: expected out or in, got 'sideways'" in bad["message"]
    bad = ctl.call("bridge add y direction=out from=/queue/o")
    assert bad["status"] == 422 and "hosts is missing" in bad["message"]
    bad = ctl.call("bridge add y direction=out from=/queue/o hosts=h:1 colour=red")
    assert "unknown bridge option 'colour'" in bad["message"]
    assert ctl.call("bridge pause nope")["status"] == 404
    assert ctl.call("show bridge nope")["status"] == 404
    assert ctl.ok("bridge pause x")["state"] == "paused"
    ctl.close()
    a.restart()  # kept across restarts, paused as it was
    ctl = Control(a)
    rows = ctl.ok("list bridges")
    assert [r["name"] for r in rows] == ["x"] and rows[0]["paused"]
    ctl.ok("bridge resume x")
    send_receipted(a, "/queue/o", 3)
    wait_bridge(a, "x", lambda r: r["acknowledged"] == 3, "3 forwarded after the restart")
    assert ctl.ok("bridge delete x") is None or True
    assert ctl.ok("list bridges") == []
    ctl.close()
    a.restart()
    ctl = Control(a)
    assert ctl.ok("list bridges") == []
    ctl.close()


def test_configuration_errors_name_the_place(make_broker):
    bad = make_broker(config='bridges = {\n  { name = "q", direction = "out", from = "/queue/a", window = 0,'
                             ' hosts = "127.0.0.1:1" },\n}\n', start=False)
    with pytest.raises(AssertionError) as e:
        bad.start()
    assert "broker.lua:1: bridges[1].window: expected a number 1..100000, got '0'" in str(e.value)
    bad2 = make_broker(config='bridges = { { name = "q", direction = "in", from = "/queue/a", hosts = "h:1" } }\n',
                       start=False)
    with pytest.raises(AssertionError) as e:
        bad2.start()
    assert "bridges[1]: bridge q: to is missing" in str(e.value)


class SilentBroker:
    """Answers CONNECT and then never a RECEIPT: a remote that takes
    messages and sits on them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        c.settimeout(0.2)
        while not self.stop:
            try:
                d = c.recv(65536)
            except OSError:
                continue
            if not d:
                return
            buf += d
            if b"CONNECT" in buf and b"\0" in buf:
                c.sendall(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
                buf = b"SENT"

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


def test_stall_alarm_and_metrics(make_broker):
    silent = SilentBroker()
    try:
        a = make_broker(config=config(bridge_cfg("s", "out", "/queue/o", "/queue/i", silent.port,
                                                 stall_timeout="1s", heartbeat="0ms")))
        ctl = Control(a)
        ctl.call("events")
        send_receipted(a, "/queue/o", 3)
        events = []
        end = time.time() + 10
        while time.time() < end and not any(e["event"] == "bridge-stalled" for e in events):
            events.append(ctl.event())
        stalled = [e for e in events if e["event"] == "bridge-stalled"]
        assert stalled and stalled[0]["name"] == "s" and stalled[0]["state"] == "running"
        # every bridge event names the direction (docs/bridges.md)
        assert stalled[0]["direction"] == "out" and int(stalled[0]["lag_messages"]) == 3
        r = show(a, "s")
        assert r["stalled"] and r["pending"] == 3 and r["lag_messages"] == 3 and r["lag_seconds"] >= 1
        ctl2 = Control(a)
        ctl2.ok("bridge pause s")
        ctl2.close()
        seen = [ctl.event() for _ in range(2)]
        assert {e["event"] for e in seen} == {"bridge-paused", "bridge-state"}
        assert all(e["state"] == "paused" for e in seen)
        ctl.close()
    finally:
        silent.close()


def test_metrics_name_each_bridge(make_broker):
    b = make_broker()
    port = None
    a = make_broker("-w", "0", "10", "mq", config=config(bridge_cfg("ab", "out", "/queue/o", "/queue/i", b.port)))
    port = a.info["http_port"]
    send_receipted(a, "/queue/o", 2)
    wait_bridge(a, "ab", lambda r: r["acknowledged"] == 2, "2 forwarded")
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'mqbroker_bridge_acknowledged_total{bridge="ab",direction="out"} 2' in text
    assert 'mqbroker_bridge_state{bridge="ab",state="running"} 1' in text
    assert 'mqbroker_bridge_up{bridge="ab",direction="out"} 1' in text


def test_inbound_held_back_by_a_full_queue_loses_nothing(make_broker):
    """Backpressure inbound: a local queue that refuses (max-length with
    overflow=reject) holds the bridge back, blocked, with the remote's
    messages unconfirmed there; once room is made, all of them come."""
    remote = make_broker()
    sent = send_receipted(remote, "/queue/src", 40)
    local = make_broker(config=config(
        bridge_cfg("in", "in", "/queue/src", "/queue/dst", remote.port, window=10),
        extra='destinations = { { "/queue/dst", max_length = 5, overflow = "reject" } }'))
    r = wait_bridge(local, "in", lambda r: r["state"] == "blocked", "the bridge held back")
    assert "held back by /queue/dst" in r["error"] and "full" in r["error"]
    assert r["pending"] >= 1 and r["forwarded"] == 5
    ctl = Control(remote)
    # the rest still the remote's, not lost (the ACKs of the 5 published
    # here may still be on their way to the remote when the bridge says
    # blocked)
    wait_for(lambda: (lambda s: s["depth"] + s["unacked"] == 35)(ctl.ok("show /queue/src")),
             what="35 messages still the remote's")
    ctl.close()
    seen = drain(local, "/queue/dst", sent)
    assert sorted(set(seen)) == sorted(sent)
    wait_bridge(local, "in", lambda r: r["state"] == "running" and r["pending"] == 0, "running again")


def test_tls_with_a_client_certificate(make_broker, tmp_path):
    """A bridge over TLS, authenticating the remote with a CA chain and
    itself with a client certificate: the remote sees the certificate's CN
    as the bridge's login."""
    d = str(tmp_path)

    def openssl(*args):
        import subprocess
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=ca", "-keyout", "ca.key",
            "-out", "ca.pem")
    for cn, ext in (("localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"), ("site-a", "basicConstraints=CA:FALSE\n")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{cn}.key", "-out", f"{cn}.csr")
        with open(os.path.join(d, f"{cn}.ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{cn}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{cn}.ext", "-out", f"{cn}.crt")
        with open(os.path.join(d, f"{cn}.pem"), "w") as f:
            f.write(open(os.path.join(d, f"{cn}.crt")).read() + open(os.path.join(d, f"{cn}.key")).read())
    b = make_broker("-k", os.path.join(d, "localhost.pem"), "-a", os.path.join(d, "ca.pem"))
    tls_port = b.info["tls_port"]
    a = make_broker()
    ctl = Control(a)
    ctl.ok(f"bridge add t direction=out from=/queue/o to=/queue/i hosts=127.0.0.1:{tls_port} tls "
           f"tls-ca-chain={d}/ca.pem tls-cert-key={d}/site-a.pem tls-server-name=localhost")
    send_receipted(a, "/queue/o", 3)
    wait_bridge(a, "t", lambda r: r["acknowledged"] == 3, "3 forwarded over TLS")
    ctl.close()
    clients = Control(b).ok("list clients")
    assert any(c["login"] == "site-a" and c["transport"] == "tls" for c in clients), clients
    # A remote it cannot authenticate is refused, and said so.
    ctl = Control(a)
    ctl.ok(f"bridge add u direction=out from=/queue/p hosts=127.0.0.1:{tls_port} tls tls-ca-chain={d}/site-a.pem "
           "tls-server-name=localhost reconnect-min=50ms reconnect-max=200ms connect-timeout=300ms")
    r = wait_bridge(a, "u", lambda r: r["state"] == "failing" and "certificate verify failed" in r["error"],
                    "the TLS refusal")
    assert r["node"] == ""
    ctl.close()
