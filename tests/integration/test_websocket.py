"""STOMP over WebSocket, with Node's ws as the client (tests/ws/wspipe.js)
and raw sockets for the HTTP handshake: subprotocols, split and packed
frames, text and binary, a 16 MiB message, heart-beats both ways, limits,
receipts, acks, transactions, flow control, the close path, Origin, the
handshake's size and time limits, protocol errors, TLS."""
import hashlib
import os
import socket
import ssl
import struct
import subprocess
import time

import pytest

from mqtest import Control, Raw, client, free_port, wait_for
from wstest import WsRaw

USERS = """
users = {
  { login = "alice", passcode = "secret" },
  { login = "root", passcode = "toor", admin = true },
}
function authorize(login, action, destination, info)
  if action == "admin" then
    return info.admin_user, "admin commands need an admin user"
  end
  if action == "send" and destination == "/queue/payroll" then
    return login == "root", "payroll is root's"
  end
  return info.authenticated
end
"""


@pytest.fixture
def wsb(make_broker):
    """factory: a broker with a WebSocket listener; b.ws_url is its address."""
    def make(*args, **kw):
        port = free_port()
        b = make_broker("--ws-port", str(port), *args, **kw)
        b.ws_port = port
        b.ws_url = f"ws://127.0.0.1:{port}/ws"
        return b
    return make


@pytest.fixture
def ws_clients():
    made = []

    def make(*args, **kw):
        c = WsRaw(*args, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def http_request(port, data, timeout=5.0):
    """Sends raw bytes to the WebSocket port; returns everything until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def upgrade(path="/ws", protocols="v12.stomp", extra=""):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Protocol: {protocols}\r\n" if protocols else "") + extra + "\r\n").encode()


def masked(opcode, payload, fin=True, mask=True):
    """One client frame, by hand: only for what no well-behaved client sends."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# ---- the handshake ----

def test_subprotocol_is_the_highest_stomp_version_offered(wsb, ws_clients):
    b = wsb()
    assert ws_clients(b.ws_url, ["v10.stomp", "v12.stomp", "v11.stomp"]).protocol == "v12.stomp"
    assert ws_clients(b.ws_url, ["foo", "v11.stomp", "v10.stomp"]).protocol == "v11.stomp"
    assert ws_clients(b.ws_url, ["v10.stomp"]).protocol == "v10.stomp"
    # none offered: accepted without one, as Web-STOMP does
    c = ws_clients(b.ws_url, [])
    assert c.protocol == ""
    assert c.connect()["command"] == "CONNECTED"


def test_wrong_subprotocol_gets_none_and_the_client_fails_it(wsb, ws_clients):
    b = wsb()
    s = socket.create_connection(("127.0.0.1", b.ws_port), timeout=5)
    s.sendall(upgrade(protocols="mqtt, v13.stomp"))
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in reply  # RFC 6455's example
    assert b"Sec-WebSocket-Protocol" not in reply
    # a real client that insisted on mqtt gives up on such an answer
    c = ws_clients(b.ws_url, ["mqtt"], wait=False)
    ev = c.outcome()
    assert "error" in ev and "subprotocol" in ev["error"], ev


def test_oversized_handshake_is_refused_with_431(wsb):
    b = wsb()
    big = upgrade(extra="X-Padding: " + "a" * 9000 + "\r\n")
    reply = http_request(b.ws_port, big)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"ws_max_handshake" in reply
    # the limit is an option
    b2 = wsb("-o", "ws_max_handshake=16KiB")
    assert http_request_101(b2.ws_port, big)


def http_request_101(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    reply = s.recv(4096)
    s.close()
    return reply.startswith(b"HTTP/1.1 101 ")


def test_handshake_timeout(wsb):
    b = wsb("-o", "ws_handshake_timeout=1")
    s = socket.create_connection(("127.0.0.1", b.ws_port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    start = time.time()
    reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply
    assert b"ws_handshake_timeout" in reply
    assert 0.8 < time.time() - start < 4
    s.close()


def test_plain_http_and_plain_stomp_get_clear_refusals(wsb):
    b = wsb()
    reply = http_request(b.ws_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 426 "), reply
    assert b"Sec-WebSocket-Version: 13" in reply and b"STOMP over WebSocket" in reply
    reply = http_request(b.ws_port, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert b"STOMP over WebSocket" in reply
    reply = http_request(b.ws_port, upgrade().replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"))
    assert reply.startswith(b"HTTP/1.1 426 ") and b"version 13" in reply
    reply = http_request(b.ws_port, upgrade().replace(b"GET", b"POST", 1))
    assert reply.startswith(b"HTTP/1.1 405 ")
    # the broker is unharmed
    Raw(b).connect()


def test_origin_allow_list(wsb, ws_clients):
    b = wsb("-o", "ws_origins=http://good.example, https://console.example:8443")
    bad = ws_clients(b.ws_url, headers={"Origin": "http://evil.example"}, wait=False).outcome()
    assert bad.get("unexpected") == 403, bad
    assert "origin 'http://evil.example' is not allowed (option ws_origins)" in bad["body"]
    good = ws_clients(b.ws_url, headers={"Origin": "https://console.example:8443"})
    assert good.connect()["command"] == "CONNECTED"
    # no Origin at all: not a browser, allowed
    assert ws_clients(b.ws_url).connect()["command"] == "CONNECTED"
    assert "handshake refused (403)" in b.read_log()


# ---- STOMP over the WebSocket ----

def test_frame_split_over_messages_and_frames_packed_in_one(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    # CONNECT cut at every few bytes, each piece its own message
    frame = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"
    c.send_messages([frame[i:i + 5] for i in range(0, len(frame), 5)])
    assert c.recv()["command"] == "CONNECTED"
    # SUBSCRIBE and two SENDs packed into one message, the last one cut in two
    c.send(b"SUBSCRIBE\nid:s\ndestination:/queue/pack\nreceipt:sub\n\n\0"
           b"SEND\ndestination:/queue/pack\n\none\0SEND\ndestination:/queue/pack\ncontent-length:3\n\nt")
    c.send(b"wo\0")
    assert c.recv()["headers"]["receipt-id"] == "sub"
    assert [c.recv()["body"], c.recv()["body"]] == [b"one", b"two"]
    # the broker sends one frame per message
    sent = [m for m, _ in c.messages]
    assert all(m.endswith(b"\0") and m.count(b"\0") == 1 for m in sent), sent


def test_text_and_binary_messages_both_ways(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url, binary=True)
    c.connect()
    c.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/bin", "receipt": "r"})
    c.recv()
    body = bytes(range(256)) + b"\0\xff\xfe"
    c.frame("SEND", {"destination": "/queue/bin"}, body, content_length=True)
    c.frame("SEND", {"destination": "/queue/bin"}, "h\u00e9llo")
    m1, m2 = c.recv(), c.recv()
    assert m1["body"] == body and m2["body"] == "h\u00e9llo".encode()
    kinds = [binary for _, binary in c.messages]
    # CONNECTED, RECEIPT and the UTF-8 MESSAGE as text; the binary body as binary
    assert kinds == [False, False, True, False], kinds
    # all binary on request
    b2 = wsb("-o", "ws_binary_frames=true")
    c2 = ws_clients(b2.ws_url)
    c2.connect()
    assert c2.messages[0][1] is True


def test_invalid_utf8_in_a_text_message_closes_with_1007(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect()
    c.send(b"SEND\ndestination:/queue/x\n\n\xff\xfe\0", binary=False)
    assert c.wait_close()[0] == 1007
    wait_for(lambda: "invalid UTF-8 in a text message" in b.read_log(), what="the log line")


def test_16_mib_message_over_websocket(wsb, ws_clients):
    b = wsb("-o", "max_frame=17MiB")
    body = os.urandom(16 * 1024 * 1024)
    cons = ws_clients(b.ws_url, timeout=60)
    cons.connect()
    cons.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/big", "receipt": "r"})
    cons.recv()
    prod = ws_clients(b.ws_url, binary=True, timeout=60)
    prod.connect()
    prod.frame("SEND", {"destination": "/queue/big", "receipt": "sent"}, body, content_length=True)
    assert prod.recv(timeout=60)["headers"]["receipt-id"] == "sent"
    m = cons.recv(timeout=60)
    assert m["command"] == "MESSAGE"
    assert hashlib.sha256(m["body"]).digest() == hashlib.sha256(body).digest()
    # and to a TCP client too
    tcp = Raw(b, timeout=60)
    tcp.connect()
    tcp.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/big2"})
    prod.frame("SEND", {"destination": "/queue/big2"}, body, content_length=True)
    assert tcp.recv(timeout=60)["body"] == body


def test_heart_beat_loss_closes_with_error_then_close_frame(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect(**{"heart-beat": "200,0"})  # we promise a beat every 200 ms, and send none
    start = time.time()
    c.expect_error("heart-beat timeout", timeout=5)
    assert time.time() - start < 3
    assert c.wait_close()[0] == 1000


def test_broker_heart_beats_travel_as_messages(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    f = c.connect(**{"heart-beat": "0,150"})
    assert f["headers"]["heart-beat"] == "150,0"  # advertised: what it sends
    time.sleep(1.0)
    c.send("SEND\ndestination:/queue/hb\nreceipt:r\n\nx\0")
    assert c.recv()["headers"]["receipt-id"] == "r"
    beats = [m for m, _ in c.messages if m == b"\n"]
    assert len(beats) >= 4, c.messages
    # and none advertised, none sent
    c2 = ws_clients(b.ws_url)
    assert c2.connect()["headers"]["heart-beat"] == "0,0"
    time.sleep(0.5)
    c2.send("SEND\ndestination:/queue/hb\nreceipt:r\n\nx\0")
    c2.recv()
    assert not [m for m, _ in c2.messages if m == b"\n"]


def test_client_heart_beats_keep_the_connection(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect(**{"heart-beat": "200,0"})
    for _ in range(8):
        time.sleep(0.1)
        c.send(b"\n")
    c.send("SEND\ndestination:/queue/hb\nreceipt:r\n\nx\0")
    assert c.recv()["headers"]["receipt-id"] == "r"


def test_receipts_acks_and_transactions(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect()
    c.frame("BEGIN", {"transaction": "t1"})
    for i in range(3):
        c.frame("SEND", {"destination": "/queue/tx", "transaction": "t1"}, f"m{i}")
    c.frame("BEGIN", {"transaction": "t2"})
    c.frame("SEND", {"destination": "/queue/tx", "transaction": "t2"}, "aborted")
    c.frame("ABORT", {"transaction": "t2"})
    c.frame("COMMIT", {"transaction": "t1", "receipt": "c1"})
    assert c.recv()["headers"]["receipt-id"] == "c1"
    c.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/tx", "ack": "client-individual"})
    got = [c.recv() for _ in range(3)]
    assert [m["body"] for m in got] == [b"m0", b"m1", b"m2"]
    c.frame("ACK", {"id": got[0]["headers"]["ack"], "receipt": "a0"})
    assert c.recv()["headers"]["receipt-id"] == "a0"
    c.frame("NACK", {"id": got[1]["headers"]["ack"], "receipt": "n1"})
    # the nacked m1 comes back (before or after the receipt)
    two = [c.recv(), c.recv()]
    assert [f["headers"]["receipt-id"] for f in two if f["command"] == "RECEIPT"] == ["n1"], two
    again = [f for f in two if f["command"] == "MESSAGE"]
    assert again[0]["body"] == b"m1" and again[0]["headers"].get("redelivered") == "true", two
    ctl = Control(b)
    # m1 and m2 unacknowledged: back in the queue when the client goes
    c.close()
    wait_for(lambda: ctl.ok("show /queue/tx")["depth"] == 2, what="m1 and m2 back in the queue")
    ctl.close()


def test_same_users_and_grants(wsb, ws_clients):
    b = wsb(config=USERS)
    c = ws_clients(b.ws_url)
    c.frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": "alice", "passcode": "wrong"})
    err = c.expect_error()
    assert "alice" in err["headers"]["message"]
    assert c.wait_close()[0] == 1000
    ok = ws_clients(b.ws_url)
    assert ok.connect(login="alice", passcode="secret")["command"] == "CONNECTED"
    # the same grants as over TCP: alice may not send to /queue/payroll
    ok.frame("SEND", {"destination": "/queue/payroll", "receipt": "x"}, "raise")
    err = ok.expect_error("payroll is root's")
    assert ok.wait_close()[0] == 1000
    root = ws_clients(b.ws_url)
    root.connect(login="root", passcode="toor")
    root.frame("SEND", {"destination": "/queue/payroll", "receipt": "x"}, "raise")
    assert root.recv()["headers"]["receipt-id"] == "x"
    ctl = Control(b)
    rows = ctl.ok("list clients")
    ctl.close()
    assert any(r.get("transport") == "ws" and r.get("login") == "root" for r in rows), rows


def test_limit_error_is_flushed_before_the_close_frame(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect()
    c.send("SEND\ndestination:/queue/x\nbig:" + "y" * 9000 + "\n\nz\0")
    err = c.expect_error("line too long")
    assert "max_header_line" in err["headers"]["message"]
    code, _ = c.wait_close()
    assert code == 1000


def test_slow_websocket_consumer_stops_deliveries(wsb, ws_clients):
    b = wsb("-o", "max_output=256KiB")
    cons = ws_clients(b.ws_url, timeout=30)
    cons.connect()
    cons.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/slow", "receipt": "r"})
    cons.recv()
    cons.pause()  # stops reading the socket: TCP fills up behind it
    prod = Raw(b)
    prod.connect()
    body = "x" * 65536
    for i in range(200):
        prod.frame("SEND", {"destination": "/queue/slow"}, body)
    prod.frame("SEND", {"destination": "/queue/slow", "receipt": "done"}, body)
    assert prod.recv()["headers"]["receipt-id"] == "done"
    wait_for(lambda: "slow consumer" in b.read_log(), timeout=10, what="deliveries paused")
    ctl = Control(b)
    depth = ctl.ok("show /queue/slow")["depth"]
    assert depth > 50, depth  # most messages wait in the queue, not in buffers
    cons.pause(False)
    for _ in range(201):
        assert cons.recv(timeout=30)["command"] == "MESSAGE"
    assert ctl.ok("show /queue/slow")["depth"] == 0
    ctl.close()


def test_stomp_py_and_websocket_clients_meet(wsb, ws_clients):
    b = wsb()
    conn, rec = client(b)
    conn.subscribe("/queue/meet", id="1")
    w = ws_clients(b.ws_url)
    w.connect()
    w.frame("SUBSCRIBE", {"id": "s", "destination": "/topic/news", "receipt": "r"})
    w.recv()
    w.frame("SEND", {"destination": "/queue/meet"}, "from the websocket")
    assert rec.wait_messages(1)[0].body == "from the websocket"
    conn.send("/topic/news", "from stomp.py")
    assert w.recv()["body"] == b"from stomp.py"
    conn.disconnect()


# ---- WebSocket-level errors and the close path ----

def test_unmasked_frame_is_a_protocol_error(wsb):
    b = wsb()
    s = socket.create_connection(("127.0.0.1", b.ws_port), timeout=5)
    s.sendall(upgrade())
    assert s.recv(4096).startswith(b"HTTP/1.1 101 ")
    s.sendall(masked(0x1, b"CONNECT\n\n\0", mask=False))
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    # a close frame with 1002, then EOF
    assert got[0] == 0x88 and struct.unpack(">H", got[2:4])[0] == 1002, got
    wait_for(lambda: "WebSocket protocol error" in b.read_log(), what="the log line")


def test_peer_close_frame_is_answered_and_disconnects(wsb, ws_clients):
    b = wsb()
    c = ws_clients(b.ws_url)
    c.connect()
    c.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/gone", "ack": "client", "receipt": "r"})
    c.recv()
    prod = Raw(b)
    prod.connect()
    prod.frame("SEND", {"destination": "/queue/gone", "receipt": "p"}, "keep me")
    prod.recv()
    c.recv()
    c.pipe.write({"close": 1000})
    assert c.wait_close()[0] == 1000
    ctl = Control(b)
    # the unacknowledged message went back to its queue
    wait_for(lambda: ctl.ok("show /queue/gone")["depth"] == 1, what="redelivery")
    ctl.close()
    wait_for(lambda: "closed by peer (close code 1000)" in b.read_log(), what="the log line")


def test_idle_timeout_pings_and_closes_a_silent_peer(wsb, ws_clients):
    b = wsb("-o", "ws_idle_timeout=1")
    live = ws_clients(b.ws_url)  # answers pings by itself
    live.connect()
    s = socket.create_connection(("127.0.0.1", b.ws_port), timeout=5)
    s.sendall(upgrade())
    assert s.recv(4096).startswith(b"HTTP/1.1 101 ")
    got = b""
    start = time.time()
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert 0.8 < time.time() - start < 4
    assert got[0] == 0x89, got  # the ping first
    close = got[got.index(b"\x88"):]
    assert struct.unpack(">H", close[2:4])[0] == 1001 and b"ws_idle_timeout" in close, got
    live.send("SEND\ndestination:/queue/i\nreceipt:r\n\nx\0")
    assert live.recv()["headers"]["receipt-id"] == "r"


def test_connection_limit_refusal_over_websocket(wsb, ws_clients):
    b = wsb("-n", "1")
    first = ws_clients(b.ws_url)
    first.connect()
    second = ws_clients(b.ws_url)
    second.expect_error("too many connections")
    assert second.wait_close()[0] == 1000


# ---- TLS ----

def test_secure_websocket(make_broker, ws_clients, tmp_path):
    d = str(tmp_path)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", "k.pem", "-out", "c.pem"],
                   cwd=d, check=True, capture_output=True)
    with open(os.path.join(d, "both.pem"), "w") as f:
        f.write(open(os.path.join(d, "c.pem")).read() + open(os.path.join(d, "k.pem")).read())
    port = free_port()
    b = make_broker("-k", os.path.join(d, "both.pem"), "--wss-port", str(port))
    c = ws_clients(f"wss://localhost:{port}/ws")
    c.connect()
    c.frame("SEND", {"destination": "/queue/tls", "receipt": "r"}, "over tls")
    assert c.recv()["headers"]["receipt-id"] == "r"
    ctl = Control(b)
    assert [r["transport"] for r in ctl.ok("list clients")] == ["wss"]
    ctl.close()
    # the handshake is refused over TLS as in clear
    ctx = ssl.create_default_context(cafile=os.path.join(d, "c.pem"))
    raw = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.recv(4096).startswith(b"HTTP/1.1 426 ")
    raw.close()
    # and a wss port without a certificate is a start-up error
    nb = make_broker("--wss-port", str(free_port()), start=False)
    with pytest.raises(AssertionError, match="no certificate"):
        nb.start()
