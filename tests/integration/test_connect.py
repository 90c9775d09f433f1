"""CONNECT and STOMP: version negotiation, CONNECTED headers, virtual hosts."""
import time

from mqtest import Raw, client


def test_connected_headers_for_each_version(broker):
    for offered, agreed in [("1.2", "1.2"), ("1.1", "1.1"), ("1.0,1.1,1.2", "1.2"), ("1.1,1.0", "1.1")]:
        r = Raw(broker)
        f = r.connect(version=offered)
        assert f["headers"]["version"] == agreed
        assert f["headers"]["server"].startswith("mqbroker/")
        assert f["headers"]["session"]
        assert f["headers"]["heart-beat"] == "0,0"
        r.close()


def test_no_accept_version_means_1_0(broker):
    r = Raw(broker)
    r.frame("CONNECT", {"login": "x", "passcode": "y"})
    f = r.recv()
    assert f["command"] == "CONNECTED"
    assert "version" not in f["headers"]
    assert f["headers"]["session"]


def test_unsupported_version_gets_error_listing_ours(broker):
    r = Raw(broker)
    r.frame("CONNECT", {"accept-version": "2.0,3.1", "host": "/"})
    f = r.expect_error("no supported protocol version")
    assert f["headers"]["version"] == "1.0,1.1,1.2"
    assert "2.0,3.1" in f["headers"]["message"]
    r.expect_closed()


def test_stomp_command_is_connect(broker):
    r = Raw(broker)
    r.frame("STOMP", {"accept-version": "1.2", "host": "/"})
    assert r.recv()["command"] == "CONNECTED"


def test_first_frame_must_be_connect(broker):
    r = Raw(broker)
    r.frame("SEND", {"destination": "/queue/a"}, "x")
    r.expect_error("expected CONNECT or STOMP as the first frame, got SEND")
    r.expect_closed()


def test_second_connect_is_an_error(broker):
    r = Raw(broker)
    r.connect()
    r.frame("CONNECT", {"accept-version": "1.2", "host": "/"})
    r.expect_error("already connected")


def test_stomp_py_connects_with_every_version(broker):
    for v in ("1.0", "1.1", "1.2"):
        c, rec = client(broker, version=v)
        assert c.is_connected()
        c.disconnect()


def test_unknown_host_is_refused_with_its_name(broker):
    """A host header that names no virtual host is an ERROR naming it (it
    used to fall back to the default one silently)."""
    r = Raw(broker)
    r.frame("CONNECT", {"accept-version": "1.2", "host": "some.host.example"})
    r.expect_error("unknown virtual host 'some.host.example' in the host header")


def test_own_names_and_slash_mean_the_default_vhost(broker):
    """stomp.py sends the host it connected to: this machine's names and
    addresses, host:/ and no host header all share the default vhost."""
    import socket
    a, ra = client(broker)  # stomp.py's own host header: 127.0.0.1
    b, rb = client(broker, vhost="/")
    c, rc = client(broker, vhost="localhost")
    d, rd = client(broker, vhost=socket.gethostname())
    e, re_ = client(broker, version="1.0")  # no host header at all
    b.subscribe("/queue/vh", id="1")
    for x in (a, c, d, e):
        x.send("/queue/vh", "through the default vhost")
    rb.wait_messages(4)
    for x in (a, b, c, d, e):
        x.disconnect()


def test_receipt_on_connect(broker):
    r = Raw(broker)
    r.frame("CONNECT", {"accept-version": "1.2", "host": "/", "receipt": "c1"})
    assert r.recv()["command"] == "CONNECTED"
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["receipt-id"] == "c1"


def test_login_accepted_as_given_without_users(broker):
    for login in ("guest", "anybody", ""):
        r = Raw(broker)
        r.connect(login=login, passcode="whatever")
        r.close()


def test_handshake_without_connect_is_closed_after_frames_arrive(broker):
    # garbage before CONNECT: clear error, then close
    r = Raw(broker)
    r.send(b"HELLO\n\n\0")
    r.expect_error("unknown command 'HELLO'")
    r.expect_closed()
