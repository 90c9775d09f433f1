"""Sockets that never say who they are, frames that never end, and
transactions that never commit cannot lock other clients out."""
import signal
import socket
import struct
import subprocess
import sys
import time

from mqtest import Control, Raw, client, wait_for


def test_idle_sockets_at_the_limit_give_way_to_a_real_client(make_broker):
    """With every connection slot taken by sockets that sent nothing, a real
    client still connects within a second: the oldest idle one gives way."""
    b = make_broker("-n", "50")
    idle = [socket.create_connection(b.address()) for _ in range(200)]
    try:
        t0 = time.time()
        conn, rec = client(b)
        assert time.time() - t0 < 1.0
        conn.send("/queue/ok", "hello", receipt="r1")
        rec.wait_receipt("r1")
        conn.disconnect()
        assert Control(b).ok("stats")["connections_refused"] >= 150
    finally:
        for s in idle:
            s.close()


def test_handshake_timeout(make_broker):
    b = make_broker("-o", "handshake_timeout=300")
    r = Raw(b)
    r.expect_error("no CONNECT frame within 300 ms (option handshake_timeout)", timeout=3)
    assert r.expect_closed()


def test_a_frame_dribbled_a_byte_at_a_time_is_cut(make_broker):
    """A connected client whose frame never completes (slowloris) is closed
    once frame_timeout has passed since the frame began."""
    b = make_broker("-o", "frame_timeout=1000")
    r = Raw(b)
    r.connect()
    t0 = time.time()
    for ch in b"SEND\ndestination:/queue/slow\n":
        try:
            r.send(bytes([ch]))
        except OSError:
            break
        time.sleep(0.1)
    r.expect_error("frame not complete after", timeout=5)
    assert time.time() - t0 < 5


def test_uncommitted_transaction_is_bounded_not_a_stall_for_everyone(make_broker):
    """A client that BEGINs and sends more than max_transaction_bytes (at
    most a quarter of the memory high-watermark) gets an ERROR; publishers
    keep getting their receipts meanwhile."""
    b = make_broker("-o", "memory_high_watermark=64MiB")
    r = Raw(b, timeout=20)
    r.connect()
    r.frame("BEGIN", {"transaction": "t"})
    body = b"x" * (1 << 20)
    err = None
    for i in range(80):
        try:
            r.frame("SEND", {"destination": "/queue/tx", "transaction": "t"}, body=body, content_length=True)
        except OSError:
            break
    err = r.expect_error("option max_transaction_bytes", timeout=20)
    assert "16777216" in err["headers"]["message"], err
    conn, rec = client(b)
    for i in range(5):
        conn.send("/queue/other", "x", receipt=f"r{i}")
        rec.wait_receipt(f"r{i}")
    conn.disconnect()
    assert Control(b).ok("stats")["memory_alarm"] is False


def test_producers_paused_by_the_memory_alarm_are_released_when_killed(make_broker):
    """Past the high-watermark producers are not read; one that is killed
    meanwhile is still noticed and released (the broker asks the kernel about
    sockets it is not reading), and once memory falls, publishing resumes."""
    b = make_broker("-o", "memory_high_watermark=32MiB")
    ctl = Control(b)
    producers = []
    for n in range(3):
        r = Raw(b, timeout=20)
        r.connect()
        r.sock.settimeout(1)
        try:
            for i in range(20):
                r.frame("SEND", {"destination": "/queue/hold"}, body=b"x" * (1 << 20), content_length=True)
        except (OSError, socket.timeout):
            pass
        producers.append(r)
    wait_for(lambda: ctl.ok("stats")["memory_alarm"] is True, timeout=5, what="the memory alarm")
    wait_for(lambda: len(ctl.ok("list clients")) == 3, timeout=5, what="three producers")
    for r in producers:
        # a socket closed with data of ours unread: the kernel resets it
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.close()
    wait_for(lambda: len(ctl.ok("list clients")) == 0, timeout=5, what="the killed producers released")
    ctl.ok("purge /queue/hold")
    wait_for(lambda: ctl.ok("stats")["memory_alarm"] is False, timeout=5, what="the memory alarm to clear")
    conn, rec = client(b)
    conn.send("/queue/after", "x", receipt="r")
    rec.wait_receipt("r")
    conn.disconnect()


# A producer that sends 1 MiB SENDs until the broker stops reading it, and
# reads nothing after CONNECTED: killed, its socket closes with an orderly
# FIN queued behind the data our zero window holds back.
BLOCKED_PRODUCER = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
buf = b""
while b"\0" not in buf:
    buf += s.recv(4096)
print("connected", flush=True)
frame = b"SEND\ndestination:/queue/hold\ncontent-length:1048576\n\n" + b"x" * 1048576 + b"\0"
while True:
    s.sendall(frame)
"""


def test_a_paused_producer_killed_with_its_data_unsent_is_released(make_broker):
    """The memory alarm stops reading a producer; killed then (kill -9), its
    FIN waits behind the data the broker is not reading and never arrives.
    The broker sends such a peer a heart-beat: a dead one's kernel answers
    with a reset, and the connection is released while memory stays high."""
    b = make_broker("-o", "memory_high_watermark=32MiB")
    ctl = Control(b)
    p = subprocess.Popen([sys.executable, "-c", BLOCKED_PRODUCER, str(b.port)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"connected"
        wait_for(lambda: ctl.ok("stats")["memory_alarm"] is True, timeout=10, what="the memory alarm")
        wait_for(lambda: len(ctl.ok("list clients")) == 1, timeout=5, what="the producer listed")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    wait_for(lambda: len(ctl.ok("list clients")) == 0, timeout=10, what="the killed producer released")
    assert ctl.ok("stats")["memory_alarm"] is True  # released while memory stays high


# Producers that keep the broker's loop busy: each sends SENDs to a queue
# that one consumer drains, as fast as the broker reads them.
FLOODER = r"""
import socket, sys, threading
port = int(sys.argv[1])
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    buf = b""
    while b"\0" not in buf:
        buf += s.recv(4096)
    return s
c = connect()
c.sendall(b"SUBSCRIBE\nid:0\ndestination:/queue/flood\nack:auto\n\n\0")
def drain():
    while c.recv(1 << 20):
        pass
threading.Thread(target=drain, daemon=True).start()
ps = [connect() for _ in range(4)]
batch = b"SEND\ndestination:/queue/flood\n\n" + b"x" * 100 + b"\0"
batch *= 500
print("flooding", flush=True)
def flood(p):
    while True:
        p.sendall(batch)
for p in ps[1:]:
    threading.Thread(target=flood, args=(p,), daemon=True).start()
flood(ps[0])
"""


def test_new_clients_get_in_while_connected_ones_keep_the_broker_busy(make_broker):
    """Handshakes run at a lower priority than connected clients; a broker
    kept busy by them must still let a new client in (the starvation
    guard admits waiting handshakes after a second)."""
    b = make_broker()
    p = subprocess.Popen([sys.executable, "-c", FLOODER, str(b.port)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"flooding"
        time.sleep(1.0)
        for _ in range(3):
            t0 = time.time()
            r = Raw(b, timeout=10)
            r.connect()
            took = time.time() - t0
            r.close()
            assert took < 4, f"a new client took {took:.1f} s to connect while the broker was busy"
    finally:
        p.kill()
        p.wait()
