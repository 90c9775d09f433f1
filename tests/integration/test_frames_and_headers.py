"""Framing: escaping per version, repeated headers, binary bodies, line ends, receipts."""
import time

from mqtest import Raw, client


def test_receipt_for_every_frame_with_a_receipt_header(broker):
    r = Raw(broker)
    r.connect()
    frames = [
        ("SUBSCRIBE", {"destination": "/queue/rc", "id": "s", "ack": "client-individual"}),
        ("SEND", {"destination": "/topic/rc"}),
        ("BEGIN", {"transaction": "t"}),
        ("SEND", {"destination": "/queue/rc", "transaction": "t"}),
    ]
    for i, (cmd, h) in enumerate(frames):
        r.frame(cmd, dict(h, receipt=f"r{i}"))
        f = r.recv()
        assert f == {"command": "RECEIPT", "headers": {"receipt-id": f"r{i}"}, "body": b""}, (cmd, f)
    # COMMIT delivers the held SEND to our own subscription, then confirms
    r.frame("COMMIT", {"transaction": "t", "receipt": "c"})
    msg = r.recv()
    assert msg["command"] == "MESSAGE"
    assert r.recv()["headers"]["receipt-id"] == "c"
    r.frame("NACK", {"id": msg["headers"]["ack"], "receipt": "n"})
    # the redelivery and the receipt, in either order
    got = [r.recv(), r.recv()]
    assert {f["command"] for f in got} == {"MESSAGE", "RECEIPT"}
    msg = next(f for f in got if f["command"] == "MESSAGE")
    r.frame("ACK", {"id": msg["headers"]["ack"], "receipt": "a"})
    assert r.recv()["headers"]["receipt-id"] == "a"
    r.frame("BEGIN", {"transaction": "t2", "receipt": "b"})
    assert r.recv()["headers"]["receipt-id"] == "b"
    r.frame("ABORT", {"transaction": "t2", "receipt": "ab"})
    assert r.recv()["headers"]["receipt-id"] == "ab"
    r.frame("UNSUBSCRIBE", {"id": "s", "receipt": "u"})
    assert r.recv()["headers"]["receipt-id"] == "u"
    # DISCONNECT: the RECEIPT arrives before the close
    r.frame("DISCONNECT", {"receipt": "bye"})
    assert r.recv()["headers"]["receipt-id"] == "bye"
    r.expect_closed()


def test_header_escaping_1_2(broker):
    r = Raw(broker)
    r.connect("1.2")
    r.frame("SUBSCRIBE", {"destination": "/queue/esc", "id": "s"})
    r.frame("SEND", {"destination": "/queue/esc", "weird": "a\\cb\\nc\\\\d\\re"}, "x")
    head = r.recv_raw_headers()
    assert b"weird:a\\cb\\nc\\\\d\\re\n" in head


def test_header_escaping_1_1_decodes_and_reencodes(broker):
    r = Raw(broker)
    r.connect("1.1")
    r.frame("SUBSCRIBE", {"destination": "/queue/esc11", "id": "s"})
    r.frame("SEND", {"destination": "/queue/esc11", "h": "x\\cy\\nz"}, "x")
    head = r.recv_raw_headers()
    assert b"h:x\\cy\\nz\n" in head


def test_escaped_value_seen_by_stomp_py(broker):
    c, rec = client(broker)
    c.subscribe("/queue/escpy", id="1")
    c.send("/queue/escpy", "b", headers={"key": "a:b\nc\\d"})
    m = rec.wait_messages(1)[0]
    assert m.headers["key"] == "a:b\nc\\d"
    c.disconnect()


def test_undefined_escape_in_1_2_is_an_error(broker):
    r = Raw(broker)
    r.connect("1.2")
    r.frame("SEND", {"destination": "/queue/bad", "h": "tab\\there"}, "x")
    r.expect_error("undefined escape sequence in the value of header 'h' of SEND frame")
    r.expect_closed()


def test_1_0_headers_are_not_decoded(broker):
    r = Raw(broker)
    r.frame("CONNECT", {})
    assert r.recv()["command"] == "CONNECTED"
    r.frame("SUBSCRIBE", {"destination": "/queue/e10"})
    r.frame("SEND", {"destination": "/queue/e10", "h": "a\\tb"}, "x")
    f = r.recv()
    assert f["headers"]["h"] == "a\\tb"


def test_repeated_header_first_wins(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/rep", "id": "s"})
    r.send(b"SEND\ndestination:/queue/rep\nfoo:first\nfoo:second\n\nx\0")
    f = r.recv()
    assert f["headers"]["foo"] == "first"


def test_binary_body_with_nul_bytes(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/bin", "id": "s"})
    body = bytes(range(256)) * 4
    r.frame("SEND", {"destination": "/queue/bin"}, body, content_length=True)
    f = r.recv()
    assert f["body"] == body
    assert f["headers"]["content-length"] == str(len(body))


def test_large_body_round_trip(broker):
    c, rec = client(broker)
    c.subscribe("/queue/big", id="1")
    body = "z" * (1 << 20)
    c.send("/queue/big", body)
    m = rec.wait_messages(1)[0]
    assert m.body == body
    c.disconnect()


def test_crlf_line_ends(broker):
    r = Raw(broker)
    r.send(b"CONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n\0")
    assert r.recv()["command"] == "CONNECTED"
    r.send(b"SUBSCRIBE\r\ndestination:/queue/crlf\r\nid:s\r\n\r\n\0")
    r.send(b"SEND\r\ndestination:/queue/crlf\r\nk:v\r\n\r\nbody\0")
    f = r.recv()
    assert f["headers"]["k"] == "v" and f["body"] == b"body"


def test_body_without_content_length_ends_at_nul(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/nul", "id": "s"})
    r.send(b"SEND\ndestination:/queue/nul\n\nhello\0\n\nSEND\ndestination:/queue/nul\n\nworld\0")
    assert r.recv()["body"] == b"hello"
    assert r.recv()["body"] == b"world"


def test_frames_split_into_single_bytes(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/slow", "id": "s"})
    data = b"SEND\ndestination:/queue/slow\ncontent-length:3\n\nabc\0"
    for i in range(len(data)):
        r.send(data[i:i + 1])
        time.sleep(0.002)
    assert r.recv()["body"] == b"abc"


def test_heart_beats_negotiated_and_sent(broker):
    r = Raw(broker)
    f = r.connect(**{"heart-beat": "0,200"})
    # we asked to receive every 200 ms and promised to send nothing
    assert f["headers"]["heart-beat"] == "200,0"
    r.sock.settimeout(2)
    start = time.time()
    data = b""
    while time.time() - start < 1.0:
        data += r.sock.recv(100)
    assert data.count(b"\n") >= 3, data


def test_silent_client_is_dropped_and_its_messages_return(broker):
    p, _ = client(broker)
    p.send("/queue/hb", "keep me")
    r = Raw(broker)
    f = r.connect(**{"heart-beat": "200,0"})
    assert f["headers"]["heart-beat"] == "0,200"
    r.frame("SUBSCRIBE", {"destination": "/queue/hb", "id": "s", "ack": "client-individual"})
    assert r.recv()["body"] == b"keep me"
    # now stay silent: the broker gives up after the interval plus grace
    start = time.time()
    e = r.expect_error("heart-beat timeout", timeout=5)
    assert time.time() - start < 3
    r.expect_closed()
    c, rec = client(broker)
    c.subscribe("/queue/hb", id="1")
    m = rec.wait_messages(1)[0]
    assert m.body == "keep me" and m.headers["redelivered"] == "true"
    c.disconnect()
    p.disconnect()


def test_client_heart_beats_keep_connection_alive(broker):
    r = Raw(broker)
    r.connect(**{"heart-beat": "200,0"})
    for _ in range(8):
        time.sleep(0.15)
        r.send(b"\n")
    r.frame("SEND", {"destination": "/topic/alive", "receipt": "x"})
    assert r.recv()["headers"]["receipt-id"] == "x"


def test_stomp_py_heartbeats(broker):
    c, rec = client(broker, heartbeats=(200, 200))
    time.sleep(1.2)
    assert c.is_connected()
    c.send("/topic/hbpy", "x", receipt="r")
    rec.wait_receipt("r")
    c.disconnect()
