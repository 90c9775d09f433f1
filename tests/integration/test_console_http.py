"""The web console's HTTP rules, spoken as a browser would: the page comes
out of the broker itself; logins make an HttpOnly, SameSite=Strict
session cookie; viewing needs a session, acting needs an admin; every
change must come from the console's own origin with the session's CSRF
token; logging out ends the session and its streams; bad input gets a
clear error. And the snapshot stream: built once a second for every
viewer alike."""
import re
import time

import pytest

from consoletest import USERS, Console
from mqtest import Control, client, free_port, wait_for


@pytest.fixture
def console(make_broker):
    port = free_port()
    b = make_broker("-w", str(port), "64", "", config=USERS)
    c = Console(port)
    c.broker = b
    return c


def test_the_page_comes_from_the_broker(console):
    status, page, h = console.request("GET", "/")
    assert status == 200 and h["Content-Type"].startswith("text/html") and "<title>mqbroker console</title>" in page
    # nothing from elsewhere: every script and style sheet is the broker's own
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "script-src 'self'" in h["Content-Security-Policy"] and "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
    for name, ctype in (("console.js", "text/javascript"), ("console.css", "text/css"), ("icon.svg", "image/svg+xml")):
        status, body, h = console.request("GET", f"/console/{name}")
        assert status == 200 and h["Content-Type"].startswith(ctype) and len(body) > 100, name
        etag = h["ETag"]
        status, _, _ = console.request("GET", f"/console/{name}", headers={"If-None-Match": etag})
        assert status == 304
    status, body, _ = console.request("GET", "/console/nothing.js")
    assert status == 404 and "no such page" in body
    status, body, _ = console.request("POST", "/", raw=b"x")
    assert status == 405
    # the rest of the HTTP face is still there
    assert console.request("GET", "/health")[0] == 200


def test_login_makes_an_httponly_samesite_session(console):
    status, reply = console.login()
    assert status == 200 and reply["data"]["login"] == "admin" and reply["data"]["admin"] is True
    cookie = console.set_cookie
    assert re.match(r"mq_console=[0-9a-f]{64};", cookie), cookie
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attr in cookie, cookie
    assert len(reply["data"]["token"]) == 64 and reply["data"]["token"] not in cookie
    status, reply, _ = console.request("GET", "/console/api/session")
    assert status == 200 and reply["data"]["login"] == "admin" and reply["data"]["token"] == console.token
    assert "web console: admin logged in from 127.0.0.1" in console.broker.read_log()


def test_refused_logins(console):
    for login, password in (("admin", "wrong"), ("nobody", "secret")):
        status, reply = console.login(login, password)
        assert status == 401 and reply["message"] == "login failed: wrong login or password", reply
    assert console.cookie is None
    log = console.broker.read_log()
    assert "login refused from 127.0.0.1" in log and "wrong passcode" in log and "unknown login 'nobody'" in log
    status, reply = console.login("", "x")
    assert status == 400 and "login is empty" in reply["message"]


def test_login_must_come_from_the_console_page(console):
    status, reply = console.login(origin=None)
    assert status == 403 and "no Origin header" in reply["message"]
    status, reply = console.login(origin="http://evil.example")
    assert status == 403 and "cross-origin request refused: Origin http://evil.example" in reply["message"]
    assert console.cookie is None
    # browsers that send no Origin send the page in Referer
    status, reply = console.login(origin=None, headers={"Referer": console.origin + "/"})
    assert status == 200, reply


def test_everything_but_login_needs_a_session(console):
    for method, path in (("GET", "/console/api/session"), ("GET", "/console/api/stream"),
                         ("GET", "/console/api/history?name=/queue/x"), ("POST", "/console/api/command"),
                         ("POST", "/console/api/logout")):
        status, reply, _ = console.request(method, path, {"args": ["stats"]} if method == "POST" else None)
        assert status == 401 and "not logged in" in reply["message"], (path, reply)
    console.cookie = "0" * 64
    status, reply = console.command("stats")
    assert status == 401


def test_changes_need_the_csrf_token_and_the_origin(console):
    console.login()
    status, reply = console.command("create", "queue", "/queue/csrf", token=None)
    assert status == 403 and reply["message"].startswith("missing CSRF token"), reply
    status, reply = console.command("create", "queue", "/queue/csrf", token="f" * 64)
    assert status == 403 and reply["message"].startswith("wrong CSRF token"), reply
    status, reply = console.command("create", "queue", "/queue/csrf", origin="http://evil.example")
    assert status == 403 and "cross-origin" in reply["message"]
    status, reply = console.command("create", "queue", "/queue/csrf", origin=None)
    assert status == 403
    # none of those did anything
    assert Control(console.broker).call("show /queue/csrf")["status"] == 404
    status, reply = console.command("create", "queue", "/queue/csrf")
    assert status == 200 and reply["message"] == "queue /queue/csrf created"
    assert "admin command from web console 127.0.0.1" in console.broker.read_log()


def test_a_viewer_sees_but_does_not_act(console):
    status, reply = console.login("viewer", "look")
    assert status == 200 and reply["data"]["admin"] is False
    status, reply = console.command("list", "queues")
    assert status == 200 and reply["ok"]
    status, reply = console.command("create", "queue", "/queue/v")
    assert status == 403 and "admin rights needed" in reply["message"]
    status, reply = console.command("send", "/queue/v", "x")
    assert status == 403


def test_viewing_needs_a_consume_grant_or_admin(console):
    """A user granted only to send may not use the console; once it may
    consume somewhere, it may look."""
    ctl = Control(console.broker)
    ctl.ok('permit viewer "" ".*" ""')
    status, reply = console.login("viewer", "look")
    assert status == 403 and reply["message"] == \
        "viewer may not use the console: viewing needs consume rights or admin", reply
    assert console.cookie is None
    ctl.ok('permit viewer "" "" "/queue/mine"')
    status, reply = console.login("viewer", "look")
    assert status == 200 and reply["data"]["admin"] is False
    # rights taken away later end what the session may do, and its stream
    stream = console.stream()
    stream.until("snapshot")
    ctl.ok('permit viewer "" ".*" ""')
    status, reply = console.command("list")
    assert status == 403 and "may no longer use the console" in reply["message"]
    assert stream.until("logout")["reason"] == "this user may no longer use the console"
    stream.close()
    ctl.close()


def test_logout_ends_the_session_and_its_streams(console):
    console.login()
    old = console.cookie
    stream = console.stream()
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    stream.until("snapshot")
    status, reply, h = console.request("POST", "/console/api/logout", {})
    assert status == 200 and "Max-Age=0" in h["Set-Cookie"] and "HttpOnly" in h["Set-Cookie"]
    assert stream.until("logout")["reason"] == "logged out"
    with pytest.raises(EOFError):
        stream.until("snapshot")
    stream.close()
    console.cookie = old
    status, reply = console.command("stats")
    assert status == 401
    # a new login is a new session
    console.login()
    assert console.cookie != old


def test_bad_input_gets_a_clear_error(console):
    console.login()
    cases = [
        (b"{", 400, "malformed JSON"),
        (b"[1]", 400, "expected a JSON object"),
        (b"", 400, "empty request body"),
        (b'{"args": "stats"}', 400, "expected {\"args\""),
        (b'{"args": []}', 400, "expected {\"args\""),
        (b'{"args": ["show", 7]}', 400, "args[1] must be a string"),
        (b'{"args": ["show", "a\\u0000b"]}', 400, "args[1] must be a string without NUL"),
        (b'{"args": ["events"]}', 400, "events streams"),
        (b'{"args": ["nosuch"]}', 405, "unknown command 'nosuch'"),
        (b'{"args": ["purge"]}', 400, "missing argument"),
        (b'{"args": ["purge", "/queue/none"]}', 404, "no destination named /queue/none"),
    ]
    for raw, code, text in cases:
        status, reply, _ = console.request("POST", "/console/api/command", raw=raw)
        assert status == code and text in reply["message"] and reply["ok"] is False, (raw, reply)
    status, reply, _ = console.request("POST", "/console/api/command", raw=b'{"args": ["send", "/queue/big", "'
                                       + b"x" * (1 << 20) + b'"]}')
    assert status == 413 and "request body too large" in reply["message"]
    status, reply, _ = console.request("GET", "/console/api/nope")
    assert status == 404 and "no such console API 'nope'" in reply["message"]
    status, reply, h = console.request("GET", "/console/api/command")
    assert status == 405 and h["Allow"] == "POST" and "command takes POST" in reply["message"]
    status, reply, _ = console.request("POST", "/console/api/login", raw=b'{"login": 1, "password": "x"}')
    assert status == 400 and '"login" must be a string' in reply["message"]
    status, reply, _ = console.request("GET", "/console/api/history")
    assert status == 400 and "?name=" in reply["message"]
    status, reply, _ = console.request("GET", "/console/api/history?name=/queue/never")
    assert status == 404 and "no figures recorded for /queue/never" in reply["message"]
    assert console.broker.alive()


def test_send_publishes_as_the_logged_in_user(make_broker):
    """The console's publish is the `send` admin command, which goes through
    the core's publish entry point as the console's user: authorize() sees
    that user, route() applies, headers arrive. mqsh runs the same command."""
    port = free_port()
    b = make_broker("-w", str(port), "8", "", config=USERS + """
function authorize(login, action, destination, info)
  if action == "send" and destination == "/queue/vault" then
    return false, login .. " may not write to the vault"
  end
  return true
end
function route(msg)
  if msg.destination == "/queue/old" then return "/queue/new" end
end
""")
    c = Console(port)
    c.login()
    conn, rec = client(b, login="viewer", passcode="look")
    conn.subscribe("/queue/jobs", id="1")
    wait_for(lambda: Control(b).ok("show /queue/jobs")["consumers"] == 1, what="the subscriber")
    data = c.ok("send", "/queue/jobs", "frame 12", "job=42", "content-type=text/plain")
    assert data["status"] == "accepted" and data["destination"] == "/queue/jobs"
    m = rec.wait_messages(1)[0]
    assert m.body == "frame 12" and m.headers["job"] == "42" and m.headers["content-type"] == "text/plain"
    status, reply = c.command("send", "/queue/vault", "x")
    assert status == 403 and reply["message"] == \
        "send: admin is not allowed to send /queue/vault: admin may not write to the vault", reply
    c.ok("send", "/queue/old", "moved")
    assert Control(b).ok("show /queue/new")["depth"] == 1
    status, reply = c.command("send", "/queue/jobs", "x", "message-id=7")
    assert status == 422 and "'message-id' is the broker's to set" in reply["message"]
    status, reply = c.command("send", "/queue/jobs", "x", "novalue")
    assert status == 422 and "'novalue' is not NAME=VALUE" in reply["message"]
    status, reply = c.command("send", "/command/list", "x")
    assert status == 403 and "command destination" in reply["message"]
    # the control socket runs it too, as the administrator on this machine
    r = Control(b).call('send /queue/jobs "from the socket" persistent=true')
    assert r["ok"] and r["data"]["journaled"] is True
    assert rec.wait_messages(2)[1].body == "from the socket"
    conn.disconnect()


def test_one_snapshot_a_second_for_every_viewer(console):
    """Ten streams get the same snapshots: built once in a tick, the same
    bytes to all (their time_ms is the moment it was built)."""
    console.login()
    Control(console.broker).ok("create queue /queue/watched")
    streams = [console.stream() for _ in range(10)]
    try:
        for s in streams:
            h = s.until("history")
            assert h["fields"][:3] == ["time_ms", "rate_in", "rate_out"]
        first = [s.until("snapshot") for s in streams]
        assert {"stats", "destinations", "durables", "clients", "bridges"} <= set(first[0])
        assert [d["name"] for d in first[0]["destinations"]] == ["/queue/watched"]
        assert first[0]["bridges"] == []
        later = [[s.until("snapshot")["time_ms"] for _ in range(3)] for s in streams]
        assert all(t == later[0] for t in later), later
        assert later[0][2] - later[0][0] >= 1500  # one a second
        # events as they happen
        Control(console.broker).ok("pause /queue/watched")
        for s in streams:
            ev = s.until("event")
            while ev["event"] != "queue-paused":
                ev = s.until("event")
            assert ev["name"] == "/queue/watched"
    finally:
        for s in streams:
            s.close()
    # the figures of the last seconds, for the destination's chart
    status, h, _ = console.request("GET", "/console/api/history?name=/queue/watched")
    assert status == 200 and h["fields"] == ["time_ms", "depth", "unacked", "rate_in", "rate_out", "consumers"]
    assert len(h["samples"]) >= 3
    assert console.broker.alive()


def snapshot_until(stream, pred, what, timeout=15):
    """The first snapshot for which pred holds (one comes a second)."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = stream.until("snapshot")
        if pred(last):
            return last
    raise AssertionError(f"no snapshot with {what} in {timeout} s; the last: {last}")


def test_the_snapshot_carries_each_bridge(make_broker):
    """A real outbound bridge from A to B: the snapshot's `bridges` part
    carries its state, the remote node in use, its counters as they move
    after a stomp.py client publishes, its lag while paused, the last
    error, word for word what `show bridge` says; pausing and resuming are
    the `bridge` admin command (an admin's, with the token), and their
    events arrive on the stream."""
    remote = make_broker(config='destinations = { { "/queue/inbox", persistent = true } }')
    port = free_port()
    a = make_broker("-w", str(port), "64", "", config=USERS + 'destinations = { { "/queue/outbox", persistent = true } }')
    c = Console(port)
    c.login()
    node = f"127.0.0.1:{remote.port}"
    added = c.ok("bridge", "add", "to-b", "direction=out", "from=/queue/outbox", "to=/queue/inbox", f"hosts={node}",
                 "window=10")
    assert added["name"] == "to-b" and added["hosts"] == [node]
    stream = c.stream()
    try:
        snap = snapshot_until(stream, lambda s: s["bridges"] and s["bridges"][0]["state"] == "running", "it running")
        row = snap["bridges"][0]
        assert {"name", "direction", "state", "error", "from", "to", "node", "vhost", "paused", "stalled", "window",
                "pending", "forwarded", "acknowledged", "redelivered", "failed", "duplicates", "looped",
                "lag_messages", "lag_seconds"} <= set(row), row
        assert row["name"] == "to-b" and row["direction"] == "out" and row["node"] == node and row["error"] == ""
        assert row["from"] == "/queue/outbox" and row["to"] == "/queue/inbox" and row["window"] == 10
        assert row["forwarded"] == 0 and row["lag_messages"] == 0 and row["paused"] is False
        assert snap["stats"]["bridges"] == 1

        conn, rec = client(a, login="admin", passcode="secret")
        for i in range(30):
            conn.send("/queue/outbox", f"job {i}", headers={"persistent": "true", "receipt": f"r{i}"})
        rec.wait_receipt("r29", timeout=10)
        row = snapshot_until(stream, lambda s: s["bridges"][0]["acknowledged"] == 30, "30 acknowledged")["bridges"][0]
        assert row["forwarded"] == 30 and row["pending"] == 0 and row["lag_messages"] == 0 and row["redelivered"] == 0
        assert Control(remote).ok("show /queue/inbox")["depth"] == 30

        # paused through the console: the event, then the snapshot, agree with show bridge
        status, reply = c.command("bridge", "pause", "to-b", token=None)
        assert status == 403 and reply["message"].startswith("missing CSRF token")
        status, reply = c.command("bridge", "pause", "to-b")
        assert status == 200 and reply["message"] == "bridge to-b paused" and reply["data"]["paused"] is True
        ev = stream.until("event")
        while ev["event"] != "bridge-paused":
            ev = stream.until("event")
        assert ev["name"] == "to-b" and ev["direction"] == "out" and ev["state"] == "paused"
        for i in range(5):
            conn.send("/queue/outbox", f"later {i}", headers={"persistent": "true", "receipt": f"l{i}"})
        rec.wait_receipt("l4", timeout=10)
        snap = snapshot_until(stream, lambda s: s["bridges"][0]["lag_messages"] == 5, "5 messages of lag")
        row = snap["bridges"][0]
        assert row["state"] == "paused" and row["paused"] is True and row["forwarded"] == 30 and row["pending"] == 0
        assert row["lag_seconds"] >= 0
        shown = Control(a).ok("show bridge to-b")
        for k in ("name", "direction", "state", "node", "paused", "forwarded", "acknowledged", "pending",
                  "redelivered", "lag_messages"):
            assert shown[k] == row[k], (k, shown[k], row[k])

        # a viewer sees the bridge and may not touch it
        v = Console(port)
        v.login("viewer", "look")
        status, reply = v.command("bridge", "resume", "to-b")
        assert status == 403 and "admin rights needed" in reply["message"]
        status, reply = v.command("show", "bridge", "to-b")
        assert status == 200 and reply["data"]["state"] == "paused"

        c.ok("bridge", "resume", "to-b")
        row = snapshot_until(stream, lambda s: s["bridges"][0]["acknowledged"] == 35, "35 acknowledged")["bridges"][0]
        assert row["state"] == "running" and row["lag_messages"] == 0
        conn.disconnect()

        # the remote goes away: the snapshot says so, with the reason
        remote.stop()
        row = snapshot_until(stream, lambda s: s["bridges"][0]["node"] == "" and s["bridges"][0]["error"],
                             "the link down")["bridges"][0]
        assert row["state"] in ("connecting", "failing") and row["error"] == Control(a).ok("show bridge to-b")["error"]

        status, reply = c.command("bridge", "delete", "to-b")
        assert status == 200 and reply["message"] == "bridge to-b deleted"
        snapshot_until(stream, lambda s: s["bridges"] == [], "no bridges")
        status, reply = c.command("bridge", "pause", "to-b")
        assert status == 404 and "no bridge named to-b" in reply["message"]
    finally:
        stream.close()
