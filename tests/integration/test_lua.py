"""Lua inside the broker: the configuration file, regex destination types,
route() and authorize() rules, event hooks, and reload."""
import os
import signal
import subprocess
import time

import pytest

from mqtest import MQBROKER, ROOT, Broker, Control, Raw, client, free_port, wait_for


def test_shipped_example_configuration_loads(make_broker):
    b = make_broker("-f", os.path.join(ROOT, "lua", "broker.lua"))
    c, _ = client(b)
    c.disconnect()
    assert "mqbroker 0.1.0 ready" in b.read_log()


@pytest.mark.parametrize("example", ["content_routing", "fanout", "dead_letter", "authorize"])
def test_worked_examples_load(make_broker, example):
    b = make_broker("-f", os.path.join(ROOT, "lua", "examples", example + ".lua"))
    assert b.alive()


def test_authorize_example_audits_connections(make_broker):
    """The example's on_event() names the broker's real event names."""
    b = make_broker("-f", os.path.join(ROOT, "lua", "examples", "authorize.lua"))
    c, _ = client(b, login="pilot", passcode="change-me-too")
    c.disconnect()
    wait_for(lambda: "client-disconnected\tpilot" in b.read_log(), what="the audit line for the disconnect")
    assert "client-connected\tpilot\t127.0.0.1:" in b.read_log()


def test_configuration_sets_destinations_users_and_limits(make_broker):
    port = free_port()
    b = make_broker(config=f"""
max_frame = "64KiB"
max_subscriptions = 4
vhosts = {{ "/", "dirac" }}
users = {{ {{ login = "admin", passcode = "s3cret", admin = true }}, {{ login = "agent", passcode = "pw" }} }}
queue_defaults = {{ max_deliveries = 4 }}
destinations = {{
	{{ "/queue/jobs", "queue", persistent = true, max_length = 1000 }},
	{{ "/topic/news", "topic" }},
	{{ "/pubsub/results", "pubsub", children = {{ "/queue/audit", "/queue/archive" }} }},
	{{ "/queue/elsewhere", "queue", vhost = "dirac" }},
}}
admin_port = {port}
""")
    ctl = Control(b)
    jobs = ctl.ok("show /queue/jobs")
    assert jobs["persistent"] and jobs["max_length"] == 1000 and jobs["max_deliveries"] == 4
    assert ctl.ok("show /topic/news")["type"] == "topic"
    assert ctl.ok("show /pubsub/results")["child_names"] == ["/queue/audit", "/queue/archive"]
    assert ctl.ok("show /queue/elsewhere vhost=dirac")["vhost"] == "dirac"
    # users: a wrong passcode is refused, a right one accepted
    r = Raw(b)
    r.frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": "agent", "passcode": "nope"})
    r.expect_error("authentication failed for login 'agent': wrong passcode")
    c, _ = client(b, login="agent", passcode="pw")
    c.disconnect()
    # limits from the file
    r = Raw(b)
    r.connect(login="agent", passcode="pw")
    r.frame("SEND", {"destination": "/queue/x"}, "x" * 70000, content_length=True)
    r.expect_error("limit 65536")
    # the admin port takes an admin user
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rwb")
    from test_control import admin_port_call
    assert admin_port_call(f, "login agent pw")["status"] == 403
    assert admin_port_call(f, "login admin s3cret")["ok"]
    assert admin_port_call(f, "stats")["ok"]
    s.close()


def test_command_line_overrides_the_file(make_broker):
    b = make_broker("-n", "7", config="max_connections = 2\n")
    clients = [client(b) for _ in range(5)]
    for c, _ in clients:
        c.disconnect()


def test_configuration_errors_name_file_line_and_option(tmp_path):
    path = tmp_path / "bad.lua"
    path.write_text('-- a comment\nmax_frame = "16MiB"\n\nlisteners = {\n  { port = "abc" },\n}\n')
    p = subprocess.run([MQBROKER, "-f", str(path), "--data-dir", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0
    assert "bad.lua:4" in p.stderr and "listeners[1].port" in p.stderr, p.stderr
    path.write_text("max_fram = 3\n")
    p = subprocess.run([MQBROKER, "-f", str(path), "--data-dir", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0 and "bad.lua:1" in p.stderr and "max_fram" in p.stderr
    path.write_text("types = { { '^/jobs/(', 'queue' } }\n")
    p = subprocess.run([MQBROKER, "-f", str(path), "--data-dir", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0 and "bad.lua:1" in p.stderr and "regular expression" in p.stderr


def test_regex_destination_types(make_broker):
    b = make_broker(config="""
types = {
	{ "^/jobs/", "queue" },
	{ "^/events/[a-z]+$", "pubsub", children = { "/queue/audit", "/queue/archive" } },
	{ "^/queue/broadcast$", "topic" },
}
""")
    ctl = Control(b)
    # /jobs/... is a queue: held until a subscriber comes
    p, prec = client(b)
    p.send("/jobs/render", "frame-1", receipt="r")
    prec.wait_receipt("r")
    assert ctl.ok("show /jobs/render")["type"] == "queue"
    # /events/<word> is a pubsub with the rule's children
    p.send("/events/build", "done", receipt="r2")
    prec.wait_receipt("r2")
    assert ctl.ok("show /events/build")["child_names"] == ["/queue/audit", "/queue/archive"]
    assert ctl.ok("show /queue/audit")["depth"] == 1
    # /events/Build does not match: a plain topic
    c, rec = client(b)
    c.subscribe("/events/Build", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    assert ctl.ok("show /events/Build")["type"] == "topic"
    # a rule beats the built-in prefix
    c.subscribe("/queue/broadcast", id="2", headers={"receipt": "s2"})
    rec.wait_receipt("s2")
    assert ctl.ok("show /queue/broadcast")["type"] == "topic"
    p.disconnect()
    c.disconnect()


ROUTES = """
function route(msg)
	local d = msg.destination
	if d == "/queue/in" then
		msg.headers["x-routed"] = "yes"
		msg.headers["secret"] = nil
		return "/queue/out"
	elseif d == "/queue/fan" then
		return { "/queue/f1", "/queue/f2", "/queue/f3" }
	elseif d == "/queue/void" then
		return false
	elseif d == "/queue/strict" then
		if msg.headers.kind ~= "ok" then
			error("kind must be ok, got " .. tostring(msg.headers.kind))
		end
	elseif d == "/queue/loop" then
		while true do end
	elseif d == "/queue/big" then
		if #msg.body > 10 then return "/queue/big.large" end
	end
end
"""


def test_route_rewrites_fans_out_drops_and_rejects(make_broker):
    b = make_broker(config=ROUTES)
    ctl = Control(b)
    p, prec = client(b)
    p.send("/queue/in", "x", headers={"secret": "s", "keep": "k"}, receipt="1")
    prec.wait_receipt("1")
    c, rec = client(b)
    c.subscribe("/queue/out", id="1")
    m = rec.wait_messages(1)[0]
    assert m.headers["x-routed"] == "yes" and "secret" not in m.headers and m.headers["keep"] == "k"
    p.send("/queue/fan", "copy", receipt="2")
    prec.wait_receipt("2")
    for q in ("/queue/f1", "/queue/f2", "/queue/f3"):
        assert ctl.ok(f"show {q}")["depth"] == 1
    p.send("/queue/void", "gone", receipt="3")
    prec.wait_receipt("3")
    assert ctl.call("show /queue/void")["status"] == 404
    p.send("/queue/big", "small", receipt="4")
    p.send("/queue/big", "x" * 100, receipt="5")
    prec.wait_receipt("5")
    assert ctl.ok("show /queue/big")["depth"] == 1 and ctl.ok("show /queue/big.large")["depth"] == 1
    p.send("/queue/strict", "x", headers={"kind": "bad"}, receipt="6")
    e = prec.wait_error()
    assert e.headers["message"] == "message to /queue/strict rejected: kind must be ok, got bad"
    assert e.headers["receipt-id"] == "6"
    c.disconnect()


def test_route_applies_to_http_posts(make_broker):
    """A message POSTed over HTTP goes through route() like a STOMP SEND."""
    import json
    import urllib.error
    import urllib.request

    def post(dest, body, headers=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/in{dest}", data=body, method="POST",
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    port = free_port()
    b = make_broker("-w", str(port), "4", "in", config=ROUTES)
    ctl = Control(b)
    status, body = post("/queue/in", b"x", {"X-Mq-Secret": "s", "X-Mq-Keep": "k"})
    assert status == 201 and json.loads(body)["routed_to"] == ["/queue/out"], body
    c, rec = client(b)
    c.subscribe("/queue/out", id="1")
    m = rec.wait_messages(1)[0]
    assert m.headers["x-routed"] == "yes" and "secret" not in m.headers and m.headers["keep"] == "k"
    status, body = post("/queue/fan", b"copy")
    assert status == 201 and len(json.loads(body)["routed_to"]) == 3
    for q in ("/queue/f1", "/queue/f2", "/queue/f3"):
        assert ctl.ok(f"show {q}")["depth"] == 1
    status, body = post("/queue/void", b"gone")
    assert status == 201 and json.loads(body)["status"] == "dropped"
    assert ctl.call("show /queue/void")["status"] == 404
    status, body = post("/queue/strict", b"x", {"X-Mq-Kind": "bad"})
    assert status == 403 and body.strip() == "message to /queue/strict rejected: kind must be ok, got bad"
    status, body = post("/queue/strict", b"x", {"X-Mq-Kind": "ok"})
    assert status == 201 and "routed_to" not in json.loads(body)
    c.disconnect()


def test_http_fanout_to_a_queue_and_an_idle_topic_is_accepted(make_broker):
    import json
    import urllib.request
    port = free_port()
    b = make_broker("-w", str(port), "4", "in", config="""
function route(msg)
	if msg.destination == "/queue/both" then return { "/queue/kept", "/topic/idle" } end
end
""")
    Control(b).ok("create topic /topic/idle")  # there, with nobody on it
    req = urllib.request.Request(f"http://127.0.0.1:{port}/in/queue/both", data=b"x", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read())["status"] == "accepted"
    assert Control(b).ok("show /queue/kept")["depth"] == 1


def test_refused_fanout_delivers_no_copy(make_broker):
    """A fan-out with a full reject-queue among its targets is refused whole:
    a retry must not duplicate the copies that went through."""
    b = make_broker(config="""
function route(msg)
	if msg.destination == "/queue/fan" then return { "/queue/ok1", "/queue/full", "/queue/ok2" } end
end
""")
    ctl = Control(b)
    ctl.ok("create queue /queue/full max-length=1 overflow=reject")
    p, prec = client(b)
    p.send("/queue/full", "filler", receipt="f")
    prec.wait_receipt("f")
    r = Raw(b)
    r.connect()
    r.frame("SEND", {"destination": "/queue/fan", "receipt": "x"}, "copy")
    r.expect_error("queue /queue/full is full")
    assert ctl.ok("show /queue/ok1")["depth"] == 0 and ctl.ok("show /queue/ok2")["depth"] == 0
    p.disconnect()


def test_endless_route_is_stopped_and_the_broker_goes_on(make_broker):
    b = make_broker("-o", "lua_budget=100000", config=ROUTES)
    r = Raw(b)
    r.connect()
    start = time.time()
    r.frame("SEND", {"destination": "/queue/loop", "receipt": "l"}, "x")
    e = r.expect_error("routing rule failed (out of instructions)")
    assert time.time() - start < 1.0
    assert e["headers"]["receipt-id"] == "l"
    # serving within milliseconds
    c, rec = client(b)
    c.subscribe("/queue/ok", id="1")
    c.send("/queue/ok", "fine")
    rec.wait_messages(1)
    c.disconnect()


def test_authorize_rule(make_broker):
    b = make_broker(config="""
function authorize(login, action, destination, info)
	if login == "banned" then return false, "you are banned" end
	if action == "send" and destination == "/queue/secret" and login ~= "boss" then
		return false
	end
	if action == "admin" then return login == "boss" end
	return true
end
""")
    r = Raw(b)
    r.frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": "banned"})
    r.expect_error("banned is not allowed to connect: you are banned")
    c, rec = client(b, login="worker")
    c.send("/queue/secret", "x")
    assert "worker is not allowed to send /queue/secret" in rec.wait_error().headers["message"]
    boss, brec = client(b, login="boss")
    boss.send("/queue/secret", "x", receipt="r")
    brec.wait_receipt("r")
    # /command/ follows the rule's admin answer, even on loopback
    w2, wrec = client(b, login="worker")
    w2.send("/command/stats", "")
    assert "not allowed to admin" in wrec.wait_error().headers["message"]
    boss.send("/command/stats", "", receipt="cmd")
    brec.wait_receipt("cmd")
    boss.disconnect()


def test_event_hook(make_broker):
    b = make_broker(config="""
function on_event(name, fields)
	if name == "client-connected" then print("hello " .. (fields.login or "?")) end
	if name == "destination-created" then print("created " .. fields.name) end
end
""")
    c, _ = client(b, login="hooked")
    Control(b).ok("create queue /queue/hooked")
    c.disconnect()
    wait_for(lambda: "hello hooked" in b.read_log() and "created /queue/hooked" in b.read_log(),
             what="hook output in the log")


def test_reload_applies_new_rules_and_keeps_connections(make_broker, tmp_path):
    cfg = tmp_path / "broker.lua"
    cfg.write_text('types = { { "^/a/", "queue" } }\n')
    b = make_broker("-f", str(cfg))
    c, rec = client(b)
    c.subscribe("/queue/steady", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    cfg.write_text('types = { { "^/b/", "queue" } }\nfunction route(msg) msg.headers["v"] = "2" end\n')
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in b.read_log(), what="reload")
    ctl = Control(b)
    p, prec = client(b)
    p.send("/b/x", "queued", receipt="r")
    prec.wait_receipt("r")
    assert ctl.ok("show /b/x")["type"] == "queue"
    # the connection made before the reload is still served, with the new route()
    p.send("/queue/steady", "after reload")
    m = rec.wait_messages(1)[0]
    assert m.headers["v"] == "2"
    # a broken file: the running configuration stays, the reason is reported
    cfg.write_text("types = {\n")
    r = ctl.call("reload")
    assert r["status"] == 422 and "broker.lua" in r["message"] and "reload failed" in r["message"]
    p.send("/queue/steady", "still routed")
    assert rec.wait_messages(2)[1].headers["v"] == "2"
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed, the running configuration stays" in b.read_log(), what="logged failure")
    assert b.alive()
    # a change that needs a restart is named in the reply, not only in the log
    cfg.write_text('types = { { "^/b/", "queue" } }\nsegment_size = "1MiB"\n')
    r = ctl.ok("reload")
    assert r["restart_needed_for"] == "segment_size"
    assert "take effect at the next restart: segment_size" in ctl.call("reload")["message"]
    c.disconnect()
    p.disconnect()


def test_reload_refused_by_the_running_broker_changes_nothing(make_broker, tmp_path):
    cfg = tmp_path / "broker.lua"
    cfg.write_text("max_headers = 100\n")
    b = make_broker("-f", str(cfg))
    c, rec = client(b)
    c.subscribe("/jobs/x", id="1", headers={"receipt": "s"})  # a topic, by its name
    rec.wait_receipt("s")
    cfg.write_text('max_headers = 50\ndestinations = { { "/jobs/x", "queue" } }\n')
    ctl = Control(b)
    r = ctl.call("reload")
    assert r["status"] == 422 and "/jobs/x exists as a topic; the file makes it a queue" in r["message"]
    assert ctl.ok("config max_headers")["value"] == "100"  # the old configuration stays whole
    c.disconnect()


def test_http_admin_write_with_an_admin_user(make_broker):
    import base64
    from test_operations import http
    port = free_port()
    b = make_broker("-w", str(port), "4", "r",
                    config='users = { { login = "root", passcode = "pw", admin = true }, { login = "joe", passcode = "j" } }\n')
    url = f"http://127.0.0.1:{port}/api/create"
    auth = lambda u, p: {"Authorization": "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()}
    status, body = http("POST", url, b"queue /queue/viahttp", auth("joe", "j"))
    assert status == 403
    status, body = http("POST", url, b"queue /queue/viahttp", auth("root", "bad"))
    assert status == 401 and "wrong passcode" in body
    status, body = http("POST", url, b"queue /queue/viahttp", auth("root", "pw"))
    assert status == 200, body
    assert Control(b).ok("show /queue/viahttp")["type"] == "queue"
