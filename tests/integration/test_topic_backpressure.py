"""Topics slow their producers down instead of dropping what a reading
subscriber has not taken yet; only a subscriber that stops reading for
slow_consumer_timeout misses messages (or is disconnected)."""
import socket
import struct
import time

from mqtest import Control, MessageCounter, Raw, wait_for


def stalled_subscriber(broker, dest):
    """Subscribes, then never reads again."""
    r = Raw(broker)
    r.connect()
    r.frame("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "sub"})
    assert r.recv()["command"] == "RECEIPT"
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return r


def blast(broker, dest, count, size):
    """count SENDs of size bytes back to back, then waits for a receipt."""
    p = Raw(broker, timeout=120)
    p.connect()
    frame = f"SEND\ndestination:{dest}\ncontent-length:{size}\n\n".encode() + b"x" * size + b"\0"
    for _ in range(count):
        p.sock.sendall(frame)
    p.frame("SEND", {"destination": "/queue/blast-end", "receipt": "end"}, body="end")
    f = p.recv(timeout=120)
    assert f["command"] == "RECEIPT", f
    p.close()


def test_reading_subscriber_gets_every_message_of_a_large_burst(make_broker):
    """Two 5 MiB SENDs back to back reach a lone subscriber that reads: the
    first alone passes max_output (4 MiB), and the second is not dropped."""
    b = make_broker()
    sub = MessageCounter(b, "/topic/burst")
    try:
        blast(b, "/topic/burst", 2, 5 << 20)
        wait_for(lambda: sub.count == 2, timeout=30, what="both messages")
        assert Control(b).ok("stats")["dropped_slow"] == 0
    finally:
        sub.close()


def test_bursts_with_one_fast_and_one_stalled_subscriber(make_broker):
    """2 x 16 MiB and 3,000 x 10 KB to a topic: the subscriber that reads gets
    everything; the one that stopped reading misses messages only once it has
    taken nothing for slow_consumer_timeout, and holds the other up no longer."""
    # default max_frame: it bounds the body, so 16 MiB bodies are taken as
    # RabbitMQ's STOMP tests send them
    b = make_broker("-o", "slow_consumer_timeout=1000")
    fast = MessageCounter(b, "/topic/mixed")
    slow = stalled_subscriber(b, "/topic/mixed")
    try:
        t0 = time.time()
        blast(b, "/topic/mixed", 2, 16 << 20)
        blast(b, "/topic/mixed", 3000, 10_000)
        wait_for(lambda: fast.count == 3002, timeout=60, what=f"3002 messages (have {fast.count})")
        elapsed = time.time() - t0
        stats = Control(b).ok("stats")
        # what the stalled one missed, and nothing else
        assert 0 < stats["dropped_slow"] <= 3002, stats
        # held up at most about one slow_consumer_timeout (1 s) plus the work
        assert elapsed < 30, elapsed
        assert "slow consumer: took nothing" in b.read_log()
    finally:
        fast.close()
        slow.close()


def test_stalled_subscriber_disconnected_when_configured(make_broker):
    """slow_consumer_disconnect=true: a topic subscriber that stopped reading
    is closed with an ERROR that names the reason, and the others go on."""
    b = make_broker("-o", "slow_consumer_timeout=500", "-o", "slow_consumer_disconnect=true")
    fast = MessageCounter(b, "/topic/cut")
    slow = stalled_subscriber(b, "/topic/cut")
    ctl = Control(b)
    try:
        assert len(ctl.ok("list clients")) == 2
        blast(b, "/topic/cut", 1000, 20_000)
        wait_for(lambda: fast.count == 1000, timeout=60, what=f"1000 messages (have {fast.count})")
        wait_for(lambda: len(ctl.ok("list clients")) == 1, timeout=10, what="the slow one gone")
        assert "slow consumer: took nothing from /topic/cut" in b.read_log()
    finally:
        fast.close()
        slow.close()


def test_producer_paused_by_backpressure_notices_its_peer_leave(make_broker):
    """A producer the broker stopped reading (its topic's subscriber is full)
    that is killed is released, not left behind: the broker looks at the
    kernel's view of a socket it is not reading."""
    b = make_broker("-o", "slow_consumer_timeout=60000")
    slow = stalled_subscriber(b, "/topic/held")
    ctl = Control(b)
    try:
        p = Raw(b)
        p.connect()
        frame = b"SEND\ndestination:/topic/held\ncontent-length:65536\n\n" + b"x" * 65536 + b"\0"
        p.sock.settimeout(0.5)
        try:
            for _ in range(400):   # far past max_output: the broker stops reading us
                p.sock.sendall(frame)
        except socket.timeout:
            pass
        wait_for(lambda: len(ctl.ok("list clients")) == 2, timeout=5, what="both clients listed")
        # as a killed process's socket goes: a reset, whatever was unsent
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        p.close()
        wait_for(lambda: len(ctl.ok("list clients")) == 1, timeout=5,
                 what="the paused producer released after it closed")
    finally:
        slow.close()
