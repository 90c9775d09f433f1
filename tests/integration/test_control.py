"""The control socket and /command/ destinations: one command table, every way in."""
import os
import stat
import time

from mqtest import ROOT, Control, Raw, client, wait_for


def test_socket_is_private(broker):
    path = broker.info["control_socket"]
    assert path == os.path.join(broker.data_dir, "mqbroker.sock")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_control_socket_option(make_broker, tmp_path):
    path = str(tmp_path / "ctl.sock")
    b = make_broker("--control-socket", path)
    assert b.info["control_socket"] == path
    assert Control(path).ok("stats")["connections"] == 0


def test_create_and_list_checked_through_stomp(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/made")
    ctl.ok("create topic /topic/made")
    ctl.ok("create pubsub /pubsub/made")
    names = {(d["name"], d["type"]) for d in ctl.ok("list")}
    assert {("/queue/made", "queue"), ("/topic/made", "topic"), ("/pubsub/made", "pubsub")} <= names
    assert [d["name"] for d in ctl.ok("list queues")] == ["/queue/made"]
    assert [d["name"] for d in ctl.ok("list pubsubs")] == ["/pubsub/made"]
    # a created queue holds messages like any other
    p, _ = client(broker)
    p.send("/queue/made", "x", receipt="r")
    wait_for(lambda: ctl.ok("show /queue/made")["depth"] == 1, what="depth 1")
    p.disconnect()


def test_create_conflicts_and_bad_arguments(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/q1")
    r = ctl.call("create topic /queue/q1")
    assert r["status"] == 409 and "already exists as a queue" in r["message"]
    r = ctl.call("create queue /queue/q2 max-length=lots")
    assert r["status"] == 422 and "max-length: expected a number of messages, got 'lots'" in r["message"]
    r = ctl.call("create shelf /x")
    assert r["status"] == 422 and "unknown kind 'shelf'" in r["message"]
    r = ctl.call("create topic /topic/t persistent")
    assert r["status"] == 422 and "apply to queues only" in r["message"]
    r = ctl.call("create queue")
    assert r["status"] == 400 and "missing argument" in r["message"]
    r = ctl.call("frobnicate")
    assert r["status"] == 405 and "unknown command 'frobnicate'" in r["message"]
    r = ctl.call('create queue "/queue/unterminated')
    assert r["status"] == 400 and "unterminated double quote" in r["message"]


def test_queue_options(broker):
    ctl = Control(broker)
    d = ctl.ok("create queue /queue/opts persistent max-length=10 max-bytes=1KiB overflow=reject ttl=60s "
               "max-deliveries=3 dead-letter=/queue/dead")
    assert d["persistent"] is True
    assert d["max_length"] == 10 and d["max_bytes"] == 1024 and d["overflow"] == "reject"
    assert d["ttl_ms"] == 60000 and d["max_deliveries"] == 3


def test_purge(broker):
    ctl = Control(broker)
    p, rec = client(broker)
    for i in range(7):
        p.send("/queue/purge", str(i))
    p.send("/queue/purge", "x", receipt="r")
    rec.wait_receipt("r")
    assert ctl.ok("purge /queue/purge")["purged"] == 8
    assert ctl.ok("show /queue/purge")["depth"] == 0
    c, crec = client(broker)
    c.subscribe("/queue/purge", id="1")
    time.sleep(0.2)
    assert crec.messages == []
    r = ctl.call("purge /topic/x")
    assert r["status"] == 404
    p.disconnect()
    c.disconnect()


def test_attach_detach_pubsub_children(broker):
    ctl = Control(broker)
    ctl.ok("create pubsub /pubsub/jobs")
    ctl.ok("attach /pubsub/jobs /queue/audit")
    ctl.ok("attach /pubsub/jobs /queue/archive")
    assert ctl.ok("show /pubsub/jobs")["child_names"] == ["/queue/audit", "/queue/archive"]
    p, rec = client(broker)
    p.send("/pubsub/jobs", "one", receipt="1")
    rec.wait_receipt("1")
    ctl.ok("detach /pubsub/jobs /queue/archive")
    p.send("/pubsub/jobs", "two", receipt="2")
    rec.wait_receipt("2")
    # a child attached later sees only later messages
    ctl.ok("attach /pubsub/jobs /queue/late")
    p.send("/pubsub/jobs", "three", receipt="3")
    rec.wait_receipt("3")
    got = {}
    for q in ("/queue/audit", "/queue/archive", "/queue/late"):
        c, crec = client(broker)
        c.subscribe(q, id="1")
        time.sleep(0.2)
        got[q] = crec.bodies()
        c.disconnect()
    assert got == {"/queue/audit": ["one", "two", "three"], "/queue/archive": ["one"], "/queue/late": ["three"]}
    r = ctl.call("attach /queue/audit /queue/x")
    assert r["status"] == 422 and "not a pubsub" in r["message"]
    r = ctl.call("detach /pubsub/jobs /queue/archive")
    assert r["status"] == 404
    p.disconnect()


def test_pause_and_resume(broker):
    ctl = Control(broker)
    c, rec = client(broker)
    c.subscribe("/queue/pz", id="1")
    ctl.ok("create queue /queue/pz")
    ctl.ok("pause /queue/pz")
    p, prec = client(broker)
    for i in range(3):
        p.send("/queue/pz", str(i))
    p.send("/queue/pz", "3", receipt="r")
    prec.wait_receipt("r")
    time.sleep(0.2)
    assert rec.messages == []
    assert ctl.ok("show /queue/pz")["depth"] == 4
    assert ctl.ok("show /queue/pz")["paused"] is True
    ctl.ok("resume /queue/pz")
    rec.wait_messages(4)
    c.disconnect()
    p.disconnect()


def test_list_and_show_clients_and_disconnect(broker):
    ctl = Control(broker)
    p, _ = client(broker, login="alice")
    for i in range(3):
        p.send("/queue/dc", str(i))
    c, rec = client(broker, login="bob")
    c.subscribe("/queue/dc", id="s1", ack="client-individual")
    rec.wait_messages(3)
    clients = ctl.ok("list clients")
    bob = next(x for x in clients if x["login"] == "bob")
    assert bob["subscriptions"] == 1 and bob["unacked"] == 3 and bob["peer"].startswith("127.0.0.1:")
    detail = ctl.ok(f"show client {bob['id']}")
    assert detail["subscription_list"][0]["destination"] == "/queue/dc"
    subs = ctl.ok("list subscriptions")
    assert any(s["client"] == bob["id"] and s["destination"] == "/queue/dc" for s in subs)
    ctl.ok(f"disconnect {bob['id']} maintenance window")
    e = rec.wait_error()
    assert e.headers["message"] == "disconnected by an administrator: maintenance window"
    # its unacknowledged messages went back
    c2, rec2 = client(broker)
    c2.subscribe("/queue/dc", id="1")
    rec2.wait_messages(3)
    assert all(m.headers["redelivered"] == "true" for m in rec2.messages)
    r = ctl.call("disconnect 99999")
    assert r["status"] == 404
    r = ctl.call("show client abc")
    assert r["status"] == 422
    p.disconnect()
    c2.disconnect()


def test_delete(broker):
    ctl = Control(broker)
    c, rec = client(broker)
    c.subscribe("/queue/del", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    r = ctl.call("delete /queue/del")
    assert r["status"] == 409 and "has 1 subscriber" in r["message"]
    ctl.ok("delete /queue/del force")
    e = rec.wait_error()
    assert "deleted by an administrator" in e.headers["message"]
    assert ctl.call("show /queue/del")["status"] == 404


def test_delete_force_of_a_topic_that_lives_by_its_subscriber(broker):
    """The topic exists only because of its one subscriber: dropping that
    subscriber must not free it before delete is done with it."""
    ctl = Control(broker)
    c, rec = client(broker)
    c.subscribe("/topic/fleeting", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    ctl.ok("delete /topic/fleeting force")
    assert "deleted by an administrator" in rec.wait_error().headers["message"]
    assert ctl.call("show /topic/fleeting")["status"] == 404
    assert broker.alive()


def test_attach_and_create_refuse_what_cannot_work(broker):
    ctl = Control(broker)
    ctl.ok("create pubsub /pubsub/p")
    for child, why in (("/command/events", "it is a command destination"),
                       ("/temp-queue/x", "temporary queues belong to their connection"),
                       ("/durable/X:s", "names under /durable/")):
        r = ctl.call(f"attach /pubsub/p {child}")
        assert r["status"] == 422 and why in r["message"], r
    assert ctl.call("show /temp-queue/x")["status"] == 404  # not created on the way
    assert ctl.call("attach /pubsub/p /pubsub/q")["status"] == 409
    assert ctl.call("show /pubsub/q")["status"] == 404
    r = ctl.call("create topic /queue/zz")
    assert r["status"] == 409 and "/queue/zz is a queue by its name" in r["message"]
    r = ctl.call("create queue /topic/zz")
    assert r["status"] == 409 and "is a topic by its name" in r["message"]
    ctl.ok("create queue plainname")  # no prefix: the operator says what it is


def test_half_closed_control_client_gets_every_reply(broker):
    """printf 'help\n...' | socat - UNIX-CONNECT:sock: commands, then the end of input."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(broker.info["control_socket"])
    s.sendall(b"help\n" * 50)
    s.shutdown(socket.SHUT_WR)
    out = b""
    s.settimeout(10)
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        out += d
    s.close()
    assert out.count(b'{"status"') == 50


def test_control_line_edge_cases(broker):
    import socket

    def ask(data):
        s = socket.socket(socket.AF_UNIX)
        s.connect(broker.info["control_socket"])
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        s.settimeout(10)
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out

    assert b'"ok":true' in ask(b"stats")  # the last line needs no newline
    # an over-long line: the 400 arrives whole, then an orderly close (no reset)
    out = ask(b"x" * (70 << 10) + b"\nstats\n" + b"y" * (200 << 10))
    assert out.startswith(b"400 ") and b"command line too long" in out
    out = ask(b"create queue /queue/n\0 persistent\n")
    assert b"NUL byte" in out and Control(broker).call("show /queue/n")["status"] == 404


def test_command_that_disconnects_its_sender_with_a_temporary_reply_queue(broker):
    r = Raw(broker)
    r.connect()
    me = Control(broker).ok("list clients")[-1]["id"]
    r.frame("SEND", {"destination": "/command/disconnect", "reply-to": "/temp-queue/r"}, str(me))
    r.expect_error()
    time.sleep(0.2)
    assert not [d for d in Control(broker).ok("list queues") if d["name"].startswith("/temp-queue/")]
    assert broker.alive()


def test_stats(broker):
    ctl = Control(broker)
    p, rec = client(broker)
    for i in range(5):
        p.send("/topic/nobody", "x")
    p.send("/queue/st", "x", receipt="r")
    rec.wait_receipt("r")
    s = ctl.ok("stats")
    assert s["connections"] == 1
    assert s["messages_in"] == 6
    assert s["dropped"] == 5
    assert s["depth"] == 1
    assert s["rss_bytes"] > 0 and s["uptime_s"] >= 0
    assert "rate_in" in s and "message_bytes" in s
    p.disconnect()


def test_loglevel_and_help(broker):
    ctl = Control(broker)
    assert ctl.ok("loglevel")["log_level"] == 3
    assert ctl.ok("loglevel 1")["log_level"] == 1
    assert ctl.call("loglevel 9")["status"] == 422
    cmds = [x["command"] for x in ctl.ok("help")]
    for name in ("create", "delete", "purge", "attach", "detach", "list", "show", "disconnect", "pause",
                 "resume", "stats", "loglevel", "shutdown", "help", "events"):
        assert name in cmds
    assert "usage" in ctl.ok("help purge")
    # unambiguous prefixes work
    assert ctl.call("sta")["ok"]


def test_every_command_is_documented(broker):
    """docs/control.md's table and docs/mqsh.md's list name every command the broker has."""
    with open(os.path.join(ROOT, "docs", "control.md")) as f:
        control_doc = f.read()
    with open(os.path.join(ROOT, "docs", "mqsh.md")) as f:
        mqsh_doc = f.read()
    for c in Control(broker).ok("help"):
        assert f"`{c['command']} " in control_doc or f"`{c['command']}`" in control_doc, \
            f"docs/control.md lacks {c['command']}"
        assert f"`{c['command']}`" in mqsh_doc, f"docs/mqsh.md lacks {c['command']}"


def test_config_shows_options_in_force(make_broker, tmp_path):
    sock = str(tmp_path / "ctl.sock")
    b = make_broker("-o", "max_frame=1MiB", "--control-socket", sock)
    ctl = Control(b)
    opts = {o["name"]: o for o in ctl.ok("config")}
    assert opts["max_frame"]["value"] == "1048576" and opts["max_frame"]["default"] == "16MiB"
    assert opts["max_frame"]["kind"] == "size 64 B..256 MiB"
    assert opts["max_connections"]["value"] == "1024"
    assert ctl.ok("config fsync")["value"] == "always"
    # the socket in use, though the option was left at its default
    assert ctl.ok("config control_socket")["value"] == b.info["control_socket"] == sock
    r = ctl.call("config max_fram")
    assert r["status"] == 404 and "did you mean max_frame?" in r["message"]


def test_events_stream(broker):
    ev = Control(broker)
    ev.ok("events")
    ctl = Control(broker)
    ctl.ok("create queue /queue/ev")
    assert ev.event()["event"] == "destination-created"
    c, _ = client(broker, login="carol")
    e = ev.event()
    assert e["event"] == "client-connected" and e["login"] == "carol"
    ctl.ok("create pubsub /pubsub/ev")
    ev.event()
    ctl.ok("attach /pubsub/ev /queue/ev")
    assert ev.event()["event"] == "child-attached"
    ctl.ok("pause /queue/ev")
    assert ev.event()["event"] == "queue-paused"
    ctl.ok("resume /queue/ev")
    assert ev.event()["event"] == "queue-resumed"
    c.disconnect()
    assert ev.event()["event"] == "client-disconnected"


def test_shutdown_command(make_broker):
    b = make_broker()
    assert Control(b).ok is not None
    r = Control(b).call("shutdown")
    assert r["ok"]
    assert b.proc.wait(10) == 0
    assert not os.path.exists(b.conn_file)
    assert not os.path.exists(b.info["control_socket"])


def test_shutdown_refused_in_persistent_mode(make_broker):
    b = make_broker("-s")
    r = Control(b).call("shutdown")
    assert r["status"] == 403 and "persistent server (-s)" in r["message"]
    assert b.alive()


def test_command_destination_with_receipt(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SEND", {"destination": "/command/create", "receipt": "c1"}, "queue /queue/viastomp")
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["status"] == "200"
    assert "created" in f["headers"]["message"]
    r.frame("SEND", {"destination": "/command/purge", "receipt": "c2"}, "/queue/nope")
    f = r.recv()
    assert f["headers"]["status"] == "404"
    # the connection stays open after a failed command
    r.frame("SEND", {"destination": "/command/stats", "receipt": "c3"})
    assert r.recv()["headers"]["status"] == "200"
    assert Control(broker).ok("show /queue/viastomp")["type"] == "queue"


def test_command_destination_reply_to(broker):
    c, rec = client(broker)
    c.subscribe("/queue/replies", id="1")
    c.send("/command/list", "queues", headers={"reply-to": "/queue/replies", "correlation-id": "42"})
    m = rec.wait_messages(1)[0]
    assert m.headers["status"] == "200" and m.headers["correlation-id"] == "42"
    import json
    reply = json.loads(m.body)
    assert any(d["name"] == "/queue/replies" for d in reply["data"])
    c.disconnect()


def test_command_reply_to_temporary_queue(broker):
    """A requester's own /temp-queue/ name receives the reply, as for a SEND."""
    c, rec = client(broker)
    c.subscribe("/temp-queue/answers", id="1")
    c.send("/command/stats", "", headers={"reply-to": "/temp-queue/answers"})
    m = rec.wait_messages(1)[0]
    assert m.headers["status"] == "200"
    assert m.headers["destination"] == "/temp-queue/answers"  # its owner's name for it
    assert "connections" in m.body
    # no stray queue named after the requester's local name
    names = [d["name"] for d in Control(broker).ok("list queues")]
    assert "/temp-queue/answers" not in names
    c.disconnect()


def test_command_reply_to_an_unusable_destination_is_told_on_the_receipt(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SEND", {"destination": "/command/stats", "reply-to": "/durable/x:y", "receipt": "c"})
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["status"] == "200"
    assert "belong to durable topic subscriptions" in f["headers"]["reply-error"]


def test_command_events_over_stomp(broker):
    c, rec = client(broker)
    c.subscribe("/command/events", id="ev", headers={"receipt": "s"})
    rec.wait_receipt("s")
    Control(broker).ok("create queue /queue/evstomp")
    m = rec.wait_messages(1)[0]
    assert m.headers["event"] == "destination-created"
    assert '"/queue/evstomp"' in m.body
    c.disconnect()


def test_subscribe_other_command_destination_refused(broker):
    c, rec = client(broker)
    c.subscribe("/command/stats", id="1")
    e = rec.wait_error()
    assert "only /command/events" in e.headers["message"]


def admin_port_call(sock_file, line):
    import json as _json
    sock_file.write(line.encode() + b"\n")
    sock_file.flush()
    status, length = sock_file.readline().split()
    body = sock_file.read(int(length))
    sock_file.read(1)
    return _json.loads(body)


def test_admin_port_requires_login(make_broker):
    import socket
    from mqtest import free_port
    port = free_port()
    b = make_broker("-o", f"admin_port={port}")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rwb")
    r = admin_port_call(f, "stats")
    assert r["status"] == 403 and "log in first" in r["message"]
    r = admin_port_call(f, "login root secret")
    assert r["status"] == 403 and "unknown login 'root'" in r["message"]
    # the third failure closes the connection
    admin_port_call(f, "stats")
    assert f.readline() == b""
    s.close()
