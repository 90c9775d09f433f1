"""Who may do what: the holes an attacker found, each closed."""
import json
import os
import subprocess
import tempfile

from mqtest import MQBROKER, Raw, free_port, wait_for
from test_operations import pki  # noqa: F401 (the certificates fixture)

USERS = ('users = { { login = "root", passcode = "pw", admin = true }, { login = "joe", passcode = "j" },'
         ' { login = "certonly" } }\n')


def test_user_without_passcode_needs_a_certificate(make_broker):
    """A user configured without a passcode (the certificate-login form) is
    refused over plain TCP whatever passcode is given, admins included."""
    b = make_broker(config=USERS)
    for pw in ("", "anything"):
        r = Raw(b)
        r.frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": "certonly", "passcode": pw})
        r.expect_error("this user logs in with a TLS client certificate only")
        r.close()


def test_loopback_is_not_admin_once_users_exist(make_broker):
    """With users configured, /command/ over STOMP from loopback needs a user
    marked admin; without users, loopback stays enough."""
    b = make_broker(config=USERS)
    r = Raw(b)
    r.connect(login="joe", passcode="j")
    r.frame("SEND", {"destination": "/command/purge", "receipt": "p"}, body="/queue/x")
    r.expect_error("log in as a user marked admin")
    r = Raw(b)
    r.connect(login="root", passcode="pw")
    r.frame("SEND", {"destination": "/command/stats", "receipt": "s"})
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["status"] == "200", f


def test_loopback_admin_without_users(make_broker):
    b = make_broker()
    r = Raw(b)
    r.connect()
    r.frame("SEND", {"destination": "/command/stats", "receipt": "s"})
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["status"] == "200", f


def test_client_certificates_required_close_the_default_plain_port(pki):
    """-k with -a: only the TLS port listens unless a plain port is asked for."""
    tmp = tempfile.mkdtemp(prefix="mqtest-")
    conn_file = os.path.join(tmp, "conn.json")
    log = open(os.path.join(tmp, "log"), "w")
    p = subprocess.Popen([MQBROKER, "-i", "127.0.0.1", "-l", "3", "--data-dir", os.path.join(tmp, "data"),
                          "-c", conn_file, "-o", f"tls_port={free_port()}",
                          "-k", os.path.join(pki, "localhost.pem"), "-a", os.path.join(pki, "testca.pem")],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(conn_file), timeout=20, what="the connection file")
        info = json.load(open(conn_file))
        assert info["port"] == 0 and info["tls_port"] > 0, info
        assert "not listening on the plain STOMP port" in open(os.path.join(tmp, "log")).read()
    finally:
        p.terminate()
        assert p.wait(15) == 0


def test_http_api_reads_from_another_machine_need_a_user(make_broker, remote_peer):
    """/api reads from a remote address need a user; /health and /metrics stay
    open unless http_public_metrics is false; loopback reads stay open."""
    port = free_port()
    b = make_broker("-i", remote_peer.host_ip, "-w", str(port), "8", "mq", config=USERS)
    code = f"""
import base64, urllib.request, urllib.error
def get(path, auth=None):
    h = {{"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}} if auth else {{}}
    try:
        with urllib.request.urlopen(urllib.request.Request("http://{remote_peer.host_ip}:{port}" + path, headers=h), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
print(get("/api/stats"), get("/api/stats", "joe:j"), get("/api/list/clients"), get("/health"), get("/metrics"))
"""
    out = remote_peer.python(code)
    assert out.stdout.split() == ["401", "200", "401", "200", "200"], (out.stdout, out.stderr)


def test_closed_metrics_need_a_user_from_another_machine(make_broker, remote_peer):
    port = free_port()
    make_broker("-i", remote_peer.host_ip, "-w", str(port), "8", "mq", "-o", "http_public_metrics=false",
                config=USERS)
    code = f"""
import base64, urllib.request, urllib.error
def get(path, auth=None):
    h = {{"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}} if auth else {{}}
    try:
        with urllib.request.urlopen(urllib.request.Request("http://{remote_peer.host_ip}:{port}" + path, headers=h), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
print(get("/health"), get("/metrics"), get("/metrics", "joe:j"))
"""
    out = remote_peer.python(code)
    assert out.stdout.split() == ["401", "401", "200"], (out.stdout, out.stderr)
