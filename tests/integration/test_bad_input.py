"""Bad input: a clear ERROR naming what was wrong, and other clients keep being served."""
import socket
import time

from mqtest import Raw, client


def assert_others_served(broker):
    c, rec = client(broker)
    c.subscribe("/queue/alive", id="1")
    c.send("/queue/alive", "still here")
    rec.wait_messages(1)
    c.disconnect()


def test_garbage(broker):
    r = Raw(broker)
    r.send(b"\x00\x01\x02garbage\xff\n\n\0")
    r.expect_error("unknown command")
    r.expect_closed()
    assert_others_served(broker)


def test_frame_without_nul(broker):
    r = Raw(broker)
    r.connect()
    r.send(b"SEND\ndestination:/queue/x\n\n" + b"a" * (17 << 20))
    r.expect_error("frame too large", timeout=10)
    r.expect_closed()
    assert_others_served(broker)


def test_ten_megabyte_header_block(broker):
    r = Raw(broker)
    r.connect()
    try:
        r.send(b"SEND\ndestination:/queue/x\n" + (b"h" * 100 + b":v\n") * (100 << 10))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the broker may close before reading all of it
    f = r.recv(timeout=10)
    assert f["command"] == "ERROR"
    assert "too many headers" in f["headers"]["message"] or "too long" in f["headers"]["message"]
    assert_others_served(broker)


def test_one_huge_header_line(broker):
    r = Raw(broker)
    r.connect()
    try:
        r.send(b"SEND\ndestination:/queue/x\nh:" + b"v" * (10 << 20) + b"\n\n\0")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r.expect_error("header line too long", timeout=10)
    assert_others_served(broker)


def test_unknown_command(broker):
    r = Raw(broker)
    r.connect()
    r.frame("FROBNICATE", {"x": "y"})
    r.expect_error("unknown command 'FROBNICATE'")
    r.expect_closed()
    assert_others_served(broker)


def test_content_length_larger_than_body(broker):
    r = Raw(broker)
    r.connect()
    r.send(b"SEND\ndestination:/queue/x\ncontent-length:10\n\nabc\0SEND\ndestination:/queue/x\n\nmore\0")
    r.expect_error("not followed by a NUL byte")
    r.expect_closed()
    assert_others_served(broker)


def test_content_length_not_a_number(broker):
    r = Raw(broker)
    r.connect()
    r.send(b"SEND\ndestination:/queue/x\ncontent-length:ten\n\nabc\0")
    r.expect_error("invalid content-length 'ten' in SEND frame")


def test_send_without_destination(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SEND", {"receipt": "r9"}, "x")
    e = r.expect_error("SEND frame has no destination header")
    assert e["headers"]["receipt-id"] == "r9"
    r.expect_closed()


def test_destination_that_is_only_a_prefix(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SEND", {"destination": "/queue/", "receipt": "p"}, "x")
    r.expect_error("destination name '/queue/' has nothing after its prefix")
    assert_others_served(broker)


def test_subscribe_without_id_in_1_2(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/x"})
    r.expect_error("SUBSCRIBE frame has no id header")


def test_subscribe_without_id_in_1_0_uses_destination(broker):
    r = Raw(broker)
    r.frame("CONNECT", {})
    r.recv()
    r.frame("SUBSCRIBE", {"destination": "/queue/nid", "receipt": "s"})
    assert r.recv()["command"] == "RECEIPT"
    r.frame("UNSUBSCRIBE", {"destination": "/queue/nid", "receipt": "u"})
    assert r.recv()["headers"]["receipt-id"] == "u"


def test_bad_ack_mode(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/x", "id": "1", "ack": "sometimes"})
    r.expect_error("invalid ack 'sometimes' in SUBSCRIBE frame")


def test_bad_flow_control_value(broker):
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/x", "id": "1", "max-unconfirmed-messages": "lots"})
    r.expect_error("invalid max-unconfirmed-messages 'lots' in SUBSCRIBE frame")


def test_bad_heart_beat(broker):
    r = Raw(broker)
    r.frame("CONNECT", {"accept-version": "1.2", "heart-beat": "fast"})
    r.expect_error("invalid heart-beat 'fast' in CONNECT frame")


def test_server_frame_from_client(broker):
    r = Raw(broker)
    r.connect()
    r.frame("MESSAGE", {"destination": "/queue/x"})
    r.expect_error("unexpected MESSAGE frame")


def test_limits_frame_size_headers_line(make_broker):
    b = make_broker("-o", "max_frame=4096", "-o", "max_headers=5", "-o", "max_header_line=256")
    r = Raw(b)
    r.connect()
    r.frame("SEND", {"destination": "/queue/x"}, "x" * 5000, content_length=True)
    r.expect_error("frame too large: content-length 5000 (limit 4096) in SEND frame (option max_frame)")
    r = Raw(b)
    r.connect()
    # the limit is the body's: a body of exactly max_frame is taken
    r.frame("SEND", {"destination": "/queue/x", "receipt": "full"}, "x" * 4096, content_length=True)
    f = r.recv()
    assert f["command"] == "RECEIPT" and f["headers"]["receipt-id"] == "full", f
    r.frame("SEND", {"destination": "/queue/x"}, "x" * 4097)
    r.expect_error("frame too large: a body of 4097 bytes (limit 4096) in SEND frame (option max_frame)")
    r = Raw(b)
    r.connect()
    r.frame("SEND", {f"h{i}": "v" for i in range(8)})
    r.expect_error("too many headers: more than 5 in SEND frame (option max_headers)")
    r = Raw(b)
    r.connect()
    r.frame("SEND", {"destination": "/queue/x", "long": "v" * 300})
    r.expect_error("header line too long: more than 256 bytes (limit 256) in SEND frame (option max_header_line)")
    assert_others_served(b)


def test_limit_subscriptions_per_connection(make_broker):
    b = make_broker("-o", "max_subscriptions=3")
    r = Raw(b)
    r.connect()
    for i in range(3):
        r.frame("SUBSCRIBE", {"destination": f"/queue/s{i}", "id": str(i)})
    r.frame("SUBSCRIBE", {"destination": "/queue/s4", "id": "4"})
    r.expect_error("too many subscriptions on this connection: 3 (limit 3)")


def test_connection_limit(make_broker):
    b = make_broker("-n", "2")
    a, _ = client(b)
    c, _ = client(b)
    r = Raw(b)
    r.expect_error("too many connections: 2 open (limit 2, option -n)")
    r.expect_closed()
    a.disconnect()
    time.sleep(0.2)
    d, _ = client(b)
    d.disconnect()
    c.disconnect()


def test_abrupt_disconnects_do_not_hurt(broker):
    for _ in range(50):
        s = socket.create_connection(broker.address())
        s.sendall(b"CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\ndestination:/queue/abrupt\nid:1\nack:client\n\n\0")
        s.close()
    p, _ = client(broker)
    for i in range(10):
        p.send("/queue/abrupt", str(i))
    c, rec = client(broker)
    c.subscribe("/queue/abrupt", id="1")
    rec.wait_messages(10)
    c.disconnect()
    p.disconnect()


def test_slow_consumer_stops_receiving_broker_memory_bounded(make_broker):
    b = make_broker("-o", "max_output=65536")
    r = Raw(b)
    r.connect()
    r.frame("SUBSCRIBE", {"destination": "/queue/slowc", "id": "s", "receipt": "ok"})
    assert r.recv()["command"] == "RECEIPT"
    p, prec = client(b)
    body = "x" * 10000
    for i in range(300):
        p.send("/queue/slowc", body)
    p.send("/queue/slowc", "end", receipt="done")
    prec.wait_receipt("done", timeout=20)
    # the consumer has not read: most messages must still be held by the queue
    time.sleep(0.3)
    got = 0
    r.sock.settimeout(10)
    while True:
        f = r.recv(timeout=10)
        got += 1
        if f["body"] == b"end":
            break
    assert got == 301
    p.disconnect()


def test_client_that_never_reads_is_cut_off(make_broker):
    b = make_broker("-o", "max_output_hard=65536", "-o", "max_output=8192")
    r = Raw(b)
    r.connect()
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frame = b"SEND\ndestination:/topic/void\nreceipt:receipt-number-xxxxxxxx\n\n\0"
    closed = False
    try:
        for _ in range(100):
            r.sock.sendall(frame * 2000)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        closed = True
    # the broker closed it rather than buffering receipts without bound
    if not closed:
        r.sock.settimeout(10)
        data = b""
        while True:
            try:
                chunk = r.sock.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        assert b"too much output waiting" in data
    assert "max_output_hard" in b.read_log()
    assert_others_served(b)


def test_header_line_breaks_cannot_forge_log_lines(broker):
    r = Raw(broker)
    r.connect()
    r.send(b"ABORT\ntransaction:x\\nFORGED-LINE\n\n\0")
    r.expect_error("unknown transaction")
    log = broker.read_log()
    assert "FORGED-LINE" in log
    assert not any(line.startswith("FORGED-LINE") for line in log.splitlines())
    assert "x\\nFORGED-LINE" in log  # written as an escape, on the line it belongs to


def test_nul_inside_a_header_is_refused(broker):
    r = Raw(broker)
    r.connect()
    r.send(b"SEND\ndestination:/queue/x\0y\ncontent-length:1\nreceipt:1\n\nz\0")
    r.expect_error("a header of the SEND frame contains a NUL byte")
    assert_others_served(broker)


def test_garbage_ending_in_nul_without_end_of_line_is_answered(broker):
    # A NUL can only end a frame: garbage that ends in one without an end of
    # line is an ERROR naming it at once, not a command line left waiting.
    for garbage, shown in ((b"NOTAFRAME\0", "unknown command 'NOTAFRAME'"),
                           (b"\xde\xad\xbe\xef not a frame \0", "unknown command '???? not a frame '")):
        r = Raw(broker)
        r.connect()
        r.send(garbage)
        e = r.expect_error(shown, timeout=2)
        assert "ended by a NUL byte" in e["headers"]["message"]
        r.expect_closed(timeout=2)
    assert_others_served(broker)
