"""Users, permissions and virtual hosts: hashed passwords, grants, the
user store managed from mqsh while clients are connected, safe defaults
for clients from other machines, certificate logins, failed logins."""
import base64
import json
import os
import socket
import subprocess
import time

import pytest

from mqtest import MQBROKER, MQSH, Broker, Control, Raw, client, free_port, wait_for
from test_operations import http, make_cert, pki, tls_connect  # noqa: F401 (pki is a fixture)


def mqsh(b, *args, stdin=""):
    return subprocess.run([MQSH, "-C", b.conn_file, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def hash_password(pw):
    p = subprocess.run([MQBROKER, "--hash-password"], input=pw + "\n", capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def refused(b, login, passcode, vhost=None, substring=None):
    """CONNECT must be answered with an ERROR (containing substring)."""
    r = Raw(b)
    h = {"accept-version": "1.2", "host": vhost or "/"}
    if login is not None:
        h["login"] = login
    if passcode is not None:
        h["passcode"] = passcode
    r.frame("CONNECT", h)
    f = r.expect_error(substring, timeout=15)
    r.close()
    return f["headers"]["message"]


def add_user(b, name, pw, *extra):
    p = mqsh(b, "user", "add", name, *extra, stdin=pw + "\n")
    assert p.returncode == 0, p.stderr
    return p


# ---- passwords ----------------------------------------------------------------

def test_hashed_passwords_in_the_file_and_a_warning_for_plain_text(make_broker):
    h = hash_password("s3cret")
    b = make_broker(config=f'users = {{ {{ login = "hashed", passcode = "{h}" }}, '
                           f'{{ login = "plain", passcode = "old" }} }}\n')
    for login, pw in (("hashed", "s3cret"), ("plain", "old")):
        c, _ = client(b, login=login, passcode=pw)
        c.disconnect()
    refused(b, "hashed", h, substring="wrong passcode")  # the hash itself is no password
    log = b.read_log()
    assert log.count("user 'plain'") == 1 and "mqbroker --hash-password" in log, log
    assert "user 'hashed'" not in log


def test_mqsh_hashes_the_password_and_the_broker_never_sees_it(broker):
    add_user(broker, "alice", "correct horse")
    stored = json.load(open(os.path.join(broker.data_dir, "users.json")))
    assert stored["users"][0]["password"].startswith("$pbkdf2-sha512$i=210000$")
    assert "correct horse" not in open(os.path.join(broker.data_dir, "users.json")).read()
    assert "correct horse" not in broker.read_log()
    assert oct(os.stat(os.path.join(broker.data_dir, "users.json")).st_mode & 0o777) == "0o600"
    # a plain password over the control socket is refused: only hashes travel
    r = Control(broker).call("user add bob password=hunter2")
    assert r["status"] == 422 and "expected a password hash" in r["message"], r


def test_empty_stdin_password_is_an_error(broker):
    p = mqsh(broker, "user", "add", "alice", stdin="")
    assert p.returncode != 0 and "no password: standard input is empty" in p.stderr, p.stderr
    p = mqsh(broker, "user", "add", "alice", stdin="\n")
    assert p.returncode != 0 and "the password is empty" in p.stderr, p.stderr
    assert Control(broker).ok("list users") == []


def test_password_from_a_script_is_the_line_after_the_command(broker):
    p = subprocess.run([MQSH, "-C", broker.conn_file], input="user add carol\npw-of-carol\nuser list\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "carol" in p.stdout and "store" in p.stdout
    Control(broker).ok("permit carol '.*' '.*' '.*'")
    c, _ = client(broker, login="carol", passcode="pw-of-carol")
    c.disconnect()


# ---- the store, live, and across restarts ---------------------------------------

def test_users_and_grants_change_while_clients_are_connected(broker):
    add_user(broker, "agent", "pw1")
    ctl = Control(broker)
    ctl.ok("user add keeper certificate")  # users remain once agent is gone
    ctl.ok("create queue /queue/jobs")
    ctl.ok("permit agent '' '/queue/jobs' '/queue/jobs'")
    c, rec = client(broker, login="agent", passcode="pw1")
    c.send("/queue/jobs", "one", receipt="r1")
    rec.wait_receipt("r1")
    # the grant goes: the next SEND is refused, naming the grant
    ctl.ok("permit agent '' '/queue/other' '/queue/jobs'")
    c.send("/queue/jobs", "two")
    assert "agent may not send to /queue/jobs in virtual host '/'" in rec.wait_error().headers["message"]
    # a new password: the old one stops working, the new one works
    p = mqsh(broker, "user", "passwd", "agent", stdin="pw2\n")
    assert p.returncode == 0, p.stderr
    refused(broker, "agent", "pw1", substring="wrong passcode")
    c2, rec2 = client(broker, login="agent", passcode="pw2")
    # deleting the user closes its connections with an ERROR saying why
    ctl.ok("user delete agent")
    err = rec2.wait_error()
    assert "user 'agent' was deleted by an administrator" in err.headers["message"]
    refused(broker, "agent", "pw2", substring="unknown login 'agent'")


def test_the_store_survives_a_restart(make_broker):
    b = make_broker()
    add_user(b, "op", "pw", "admin")
    ctl = Control(b)
    ctl.ok("vhost add lhcb")
    ctl.ok("permit op vhost=lhcb '.*' '.*' '.*'")
    b.stop()
    b.start()
    users = Control(b).ok("list users")
    assert [(u["name"], u["source"], u["admin"]) for u in users] == [("op", "store", True)]
    assert Control(b).ok("list permissions")[0]["vhost"] == "lhcb"
    c, rec = client(b, login="op", passcode="pw", vhost="lhcb")
    c.send("/queue/x", "kept", receipt="r")
    rec.wait_receipt("r")
    assert Control(b).ok("show /queue/x vhost=lhcb")["depth"] == 1


def test_a_corrupted_store_refuses_start_up(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "users.json").write_text('{"version": 1, "users": [ {"name": "x", "password": "$pbkdf2-sha512$i=1')
    p = subprocess.run([MQBROKER, "-i", "127.0.0.1", "-p", "0", "--data-dir", str(data)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "user store" in p.stderr and "users.json" in p.stderr and "users.json.bad" in p.stderr, p.stderr


def test_an_unwritable_store_fails_the_command_loudly(broker):
    if os.geteuid() == 0:
        # root writes through permissions: make the store's temporary a directory instead
        os.mkdir(os.path.join(broker.data_dir, "users.json.tmp"))
    else:
        os.chmod(broker.data_dir, 0o500)
    try:
        r = Control(broker).call("vhost add nowhere")
        assert r["status"] == 500 and "cannot write the user store" in r["message"], r
        assert [v["name"] for v in Control(broker).ok("vhost list")] == ["/"]
    finally:
        os.chmod(broker.data_dir, 0o700)


def test_bad_input_is_named(broker):
    ctl = Control(broker)
    add_user(broker, "alice", "pw")
    r = ctl.call("permit alice '' '/queue/(a' ''")
    assert r["status"] == 422 and "send grant '/queue/(a' is not a valid regular expression" in r["message"], r
    r = ctl.call("permit bob '' '' ''")
    assert r["status"] == 404 and "unknown user 'bob'" in r["message"], r
    r = ctl.call("permit alice vhost=cms '' '' ''")
    assert r["status"] == 404 and "unknown virtual host 'cms' (vhost add cms creates it)" in r["message"], r
    r = ctl.call("user add alice certificate")
    assert r["status"] == 409 and "user 'alice' already exists" in r["message"], r
    r = ctl.call("user add 'a:b' certificate")
    assert r["status"] == 422 and "':' is not allowed" in r["message"], r
    r = ctl.call("user delete nobody")
    assert r["status"] == 404 and "unknown user 'nobody'" in r["message"], r
    r = ctl.call("vhost delete /")
    assert r["status"] == 409 and "default one" in r["message"], r
    r = ctl.call("unpermit alice")
    assert r["status"] == 404 and "has no permissions" in r["message"], r


# ---- grants --------------------------------------------------------------------

def test_send_only_and_consume_only(broker):
    ctl = Control(broker)
    add_user(broker, "producer", "p")
    add_user(broker, "consumer", "c")
    ctl.ok("create queue /queue/public")
    ctl.ok("permit producer '' '/queue/public' ''")
    ctl.ok("permit consumer '' '' '/queue/public'")
    p, prec = client(broker, login="producer", passcode="p")
    p.send("/queue/public", "hello", receipt="s")
    prec.wait_receipt("s")
    p.subscribe("/queue/public", id="1")
    assert "producer may not consume from /queue/public" in prec.wait_error().headers["message"]
    c, crec = client(broker, login="consumer", passcode="c")
    c.subscribe("/queue/public", id="1")
    crec.wait_messages(1)
    c.send("/queue/public", "no")
    assert "consumer may not send to /queue/public" in crec.wait_error().headers["message"]


def test_creating_a_queue_needs_the_configure_grant(broker):
    ctl = Control(broker)
    add_user(broker, "worker", "w")
    add_user(broker, "builder", "b")
    ctl.ok("permit worker '' '/queue/.*|/topic/.*' '/queue/.*'")
    ctl.ok("permit builder '/queue/.*' '/queue/.*' ''")
    c, rec = client(broker, login="worker", passcode="w")
    c.send("/queue/new", "x")
    msg = rec.wait_error().headers["message"]
    assert "/queue/new does not exist, and creating it needs the configure grant" in msg, msg
    b, brec = client(broker, login="builder", passcode="b")
    b.send("/queue/new", "x", receipt="r")
    brec.wait_receipt("r")
    c, rec = client(broker, login="worker", passcode="w")
    c.send("/queue/new", "y", receipt="r2")  # it exists now
    rec.wait_receipt("r2")
    # topics and temporary queues are made by use alone
    c.send("/topic/news", "z", receipt="r3")
    rec.wait_receipt("r3")
    c.subscribe("/temp-queue/replies", id="t")
    c.send("/temp-queue/replies", "to myself", receipt="r4")
    rec.wait_receipt("r4")
    rec.wait_messages(1)


def test_configured_user_without_grants_keeps_its_old_rights(make_broker):
    b = make_broker(config='vhosts = { "other" }\n'
                           'users = { { login = "old", passcode = "pw" }, { login = "new", passcode = "pw" } }\n')
    Control(b).ok("permit new '' '/queue/mine' ''")
    for vh in ("/", "other"):
        c, rec = client(b, login="old", passcode="pw", vhost=vh)
        c.send("/queue/anything", "x", receipt="r")
        rec.wait_receipt("r")
        c.disconnect()
    c, rec = client(b, login="new", passcode="pw")
    c.send("/queue/anything", "x")
    assert "new may not send to /queue/anything" in rec.wait_error().headers["message"]
    refused(b, "new", "pw", vhost="other", substring="new has no permissions on virtual host 'other'")


def test_authorize_runs_after_the_grants_and_may_deny(make_broker):
    b = make_broker(config="""
function authorize(login, action, destination, info)
	if destination == "/queue/vetoed" then return false, "vetoed by the rule" end
	return true
end
""")
    ctl = Control(b)
    add_user(b, "u", "pw")
    ctl.ok("create queue /queue/vetoed")
    ctl.ok("create queue /queue/ok")
    ctl.ok("permit u '' '/queue/(ok|vetoed)' ''")
    c, rec = client(b, login="u", passcode="pw")
    c.send("/queue/ok", "x", receipt="r")
    rec.wait_receipt("r")
    c.send("/queue/vetoed", "x")
    assert "vetoed by the rule" in rec.wait_error().headers["message"]
    # the rule cannot allow what the grants refuse
    c, rec = client(b, login="u", passcode="pw")
    c.send("/queue/elsewhere", "x")
    assert "u may not send to /queue/elsewhere" in rec.wait_error().headers["message"]


def test_admin_commands_need_the_admin_tag_and_configure(make_broker):
    port = free_port()
    b = make_broker("-w", str(port), "4", "mq")
    add_user(b, "root", "r", "admin")
    add_user(b, "plain", "p")
    ctl = Control(b)
    ctl.ok("permit root '/queue/ops\\..*' '.*' '.*'")
    ctl.ok("permit plain '.*' '.*' '.*'")
    url = f"http://127.0.0.1:{port}/api/create"
    auth = lambda u, p: {"Authorization": "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()}
    status, body = http("POST", url, b"queue /queue/ops.jobs", auth("plain", "p"))
    assert status == 403 and "admin" in body, body
    status, body = http("POST", url, b"queue /queue/ops.jobs", auth("root", "r"))
    assert status == 200, body
    status, body = http("POST", url, b"queue /queue/elsewhere", auth("root", "r"))
    assert status == 403 and "root may not configure /queue/elsewhere" in body, body
    status, body = http("POST", url, b"queue /queue/x", auth("root", "wrong"))
    assert status == 401 and "wrong passcode" in body, body


# ---- virtual hosts --------------------------------------------------------------

def test_virtual_hosts_at_run_time(broker):
    ctl = Control(broker)
    add_user(broker, "a", "pw")
    ctl.ok("vhost add lhcb")
    ctl.ok("vhost add biomed")
    ctl.ok("permit a vhost=lhcb '.*' '.*' '.*'")
    ctl.ok("permit a vhost=biomed '.*' '.*' '.*'")
    l, lrec = client(broker, login="a", passcode="pw", vhost="lhcb")
    m, mrec = client(broker, login="a", passcode="pw", vhost="biomed")
    l.send("/queue/jobs", "for lhcb", receipt="r")
    lrec.wait_receipt("r")
    m.subscribe("/queue/jobs", id="1", headers={"receipt": "s"})
    mrec.wait_receipt("s")
    assert ctl.ok("show /queue/jobs vhost=lhcb")["depth"] == 1
    assert ctl.ok("show /queue/jobs vhost=biomed")["depth"] == 0
    assert not mrec.messages
    refused(broker, "a", "pw", vhost="cms", substring="unknown virtual host 'cms' in the host header")
    rows = {v["name"]: v for v in ctl.ok("vhost list")}
    assert rows["lhcb"]["destinations"] == 1 and rows["lhcb"]["clients"] == 1 and rows["lhcb"]["source"] == "store"
    r = ctl.call("vhost delete lhcb")
    assert r["status"] == 409 and "add 'force'" in r["message"], r
    ctl.ok("vhost delete lhcb force")
    assert "virtual host 'lhcb' was deleted" in lrec.wait_error().headers["message"]
    assert ctl.call("show /queue/jobs vhost=lhcb")["status"] == 404
    assert [p["vhost"] for p in ctl.ok("list permissions")] == ["biomed"]
    refused(broker, "a", "pw", vhost="lhcb", substring="unknown virtual host 'lhcb'")
    m.disconnect()


def test_a_persistent_queue_of_a_deleted_vhost_does_not_come_back(make_broker):
    b = make_broker()
    ctl = Control(b)
    ctl.ok("vhost add gone")
    ctl.ok("create queue /queue/keep persistent vhost=gone")
    c, rec = client(b, vhost="gone")
    c.send("/queue/keep", "x", receipt="r")
    rec.wait_receipt("r")
    ctl.ok("vhost delete gone force")
    b.stop()
    b.start()
    assert [v["name"] for v in Control(b).ok("vhost list")] == ["/"]


# ---- logins: failures, slowdown, the loop -------------------------------------------

def test_failed_logins_are_counted_slowed_and_announced(broker):
    add_user(broker, "victim", "right")
    ctl = Control(broker)
    ctl.ok("permit victim '.*' '.*' '.*'")
    events = Control(broker)
    events.ok("events")
    times = []
    for i in range(5):
        t = time.time()
        refused(broker, "victim", f"guess{i}", substring="wrong passcode")
        times.append(time.time() - t)
    ev = [events.event() for _ in range(5)]
    assert all(e["event"] == "login-failed" and e["login"] == "victim" and e["peer"].startswith("127.0.0.1:")
               for e in ev), ev
    assert not any("guess" in json.dumps(e) for e in ev)
    # three free failures, then 250 ms, then 500 ms: right or wrong
    assert times[3] >= 0.2 and times[4] >= 0.45, times
    t = time.time()
    c, _ = client(broker, login="victim", passcode="right")
    assert time.time() - t >= 0.45
    c.disconnect()
    stats = ctl.ok("stats")
    assert stats["logins_failed"] == 5 and stats["logins_delayed"] >= 3, stats
    assert "guess" not in broker.read_log()


def test_metrics_count_failed_logins(make_broker):
    port = free_port()
    b = make_broker("-w", str(port), "4", "mq")
    add_user(b, "x", "y")
    refused(b, "x", "z", substring="wrong passcode")
    status, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "mqbroker_logins_failed_total 1" in body, body


def test_frames_after_connect_wait_for_its_answer(broker):
    """A SEND pipelined behind a CONNECT whose password is still being
    checked runs only once the login is accepted, and never when it fails."""
    add_user(broker, "p", "pw")
    Control(broker).ok("permit p '.*' '.*' '.*'")
    r = Raw(broker)
    r.sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:p\npasscode:bad\n\n\0"
                   b"SEND\ndestination:/queue/sneak\n\nx\0")
    r.expect_error("wrong passcode", timeout=15)
    r = Raw(broker)
    r.sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:p\npasscode:pw\n\n\0"
                   b"SEND\ndestination:/queue/ok\nreceipt:r\n\nx\0")
    assert r.recv(timeout=15)["command"] == "CONNECTED"
    assert r.recv()["command"] == "RECEIPT"
    ctl = Control(broker)
    assert ctl.call("show /queue/sneak")["status"] == 404
    assert ctl.ok("show /queue/ok")["depth"] == 1


def test_admin_port_logs_in_a_stored_admin(make_broker):
    from test_control import admin_port_call
    port = free_port()
    b = make_broker("-o", f"admin_port={port}")
    add_user(b, "root", "toor", "admin")
    add_user(b, "joe", "j")
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    f = s.makefile("rwb")
    r = admin_port_call(f, "login joe j")
    assert r["status"] == 403 and "admin" in r["message"], r
    r = admin_port_call(f, "login root toor")
    assert r["ok"], r
    assert admin_port_call(f, "user list")["ok"]
    s.close()


# ---- certificates -----------------------------------------------------------------

def stomp_connect_tls(port, pki, cert):
    s = tls_connect(port, pki, cert=cert)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    data = b""
    while b"\0" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_certificate_login_names_a_user(make_broker, pki):
    b = make_broker("-k", os.path.join(pki, "localhost.pem"), "-a", os.path.join(pki, "testca.pem"),
                    "-o", f"tls_port={free_port()}")
    port = b.info["tls_port"]
    # while no user exists, a verified certificate is enough
    assert stomp_connect_tls(port, pki, "dirac-agent").startswith(b"CONNECTED")
    ctl = Control(b)
    ctl.ok("user add dirac-agent certificate")
    ctl.ok("permit dirac-agent '' '/queue/dirac\\..*' ''")
    assert stomp_connect_tls(port, pki, "dirac-agent").startswith(b"CONNECTED")
    # once users exist, a certificate of the same CA whose CN is no user is refused
    answer = stomp_connect_tls(port, pki, "localhost")
    assert answer.startswith(b"ERROR") and b"its CN 'localhost' is no user" in answer, answer
    users = {u["name"]: u for u in ctl.ok("list users")}
    assert users["dirac-agent"]["login"] == "certificate"


# ---- safe defaults: clients from other machines ------------------------------------------

REMOTE = """
import stomp, sys
c = stomp.Connection12([("{host}", {port})])
errors = []
class L(stomp.ConnectionListener):
    def on_error(self, frame):
        errors.append(frame.headers.get("message", ""))
c.set_listener("l", L())
try:
    c.connect({login!r}, {passcode!r}, wait=True)
    c.send("/queue/remote", "from afar")
    c.disconnect()
    print("CONNECTED")
except Exception as e:
    import time
    time.sleep(0.5)
    print("REFUSED", errors)
"""


def remote(peer, host, port, login=None, passcode=None):
    out = peer.python(REMOTE.format(host=host, port=port, login=login, passcode=passcode))
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_no_users_remote_clients_are_refused_loopback_served(make_broker, remote_peer):
    b = make_broker("-i", remote_peer.host_ip)
    assert "no users: clients from other machines are refused" in b.read_log()
    for login, pw in ((None, None), ("guest", "guest")):
        out = remote(remote_peer, remote_peer.host_ip, b.port, login, pw)
        assert out.startswith("REFUSED") and "mqsh user add NAME" in out, out
    # loopback clients are served as always (the README's commands)
    b2 = make_broker()
    c, rec = client(b2, login="guest", passcode="guest")
    c.send("/queue/jobs", "hello", receipt="r")
    rec.wait_receipt("r")


def test_allow_anonymous_lets_remote_clients_in(make_broker, remote_peer):
    b = make_broker("-i", remote_peer.host_ip, config="allow_anonymous = true\n")
    assert "anyone who reaches the broker may connect" in b.read_log()
    assert remote(remote_peer, remote_peer.host_ip, b.port).startswith("CONNECTED")


def test_with_users_remote_clients_must_log_in(make_broker, remote_peer):
    b = make_broker("-i", remote_peer.host_ip)
    ctl = Control(b)
    p = mqsh(b, "user", "add", "far", stdin="away\n")
    assert p.returncode == 0, p.stderr
    ctl.ok("permit far '.*' '.*' '.*'")
    out = remote(remote_peer, remote_peer.host_ip, b.port)
    assert out.startswith("REFUSED") and "must log in as a user" in out, out
    out = remote(remote_peer, remote_peer.host_ip, b.port, "far", "wrong")
    assert out.startswith("REFUSED") and "wrong passcode" in out, out
    out = remote(remote_peer, remote_peer.host_ip, b.port, "far", "away")
    assert out.startswith("CONNECTED"), out
    assert ctl.ok("show /queue/remote")["depth"] == 1


def test_tls_listeners_refuse_versions_before_1_2(make_broker, pki):
    import ssl
    b = make_broker("-k", os.path.join(pki, "localhost.pem"), "-o", f"tls_port={free_port()}")
    for version, works in ((ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(pki, "testca.pem"))
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer 1.1 at all
        ctx.minimum_version = ctx.maximum_version = version
        raw = socket.create_connection(("127.0.0.1", b.info["tls_port"]), timeout=5)
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.close()
            assert works, f"{version} was accepted"
        except ssl.SSLError as e:
            assert not works, e
            assert "VERSION" in str(e).upper() or "PROTOCOL" in str(e).upper(), e
