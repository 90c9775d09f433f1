"""Queues slow their producers down while a consumer that is reading falls
behind, instead of growing until the memory high-watermark stops every
producer; a consumer at its prefetch window slows nobody."""
import threading
import time

from mqtest import Control, MessageCounter, Raw, wait_for

N = 10000
BODY = b"x" * 1024


def produce(broker, dest, done):
    p = Raw(broker, timeout=60)
    p.connect()
    frame = b"SEND\ndestination:" + dest.encode() + b"\ncontent-length:1024\n\n" + BODY + b"\0"
    p.sock.sendall(frame * N)
    p.frame("SEND", {"destination": "/queue/after", "receipt": "end"})
    assert p.recv()["command"] == "RECEIPT"
    done.set()
    p.close()


def test_a_queue_behind_a_slow_reading_consumer_slows_its_producer(make_broker):
    b = make_broker("-o", "max_output=64KiB")
    ctl = Control(b)
    reader = MessageCounter(b, "/queue/fc", slow=True)
    done = threading.Event()
    threading.Thread(target=produce, args=(b, "/queue/fc", done), daemon=True).start()
    peak = 0
    t_end = time.time() + 1.5
    while time.time() < t_end and not done.is_set():
        peak = max(peak, ctl.ok("show /queue/fc")["bytes"])
        time.sleep(0.02)
    assert not done.is_set(), "the producer was never slowed down"
    # the backlog stays near max_output, not the 10 MB sent (the kernel
    # takes a few MB into the consumer's socket buffers)
    assert peak < 512 * 1024, f"{peak} bytes waited in the queue"
    reader.go_fast()
    wait_for(lambda: done.is_set(), timeout=30, what="the producer's last receipt")
    wait_for(lambda: reader.count == N, timeout=30, what=f"all {N} messages (got {reader.count})")
    reader.close()


def test_a_consumer_at_its_prefetch_window_slows_nobody(make_broker):
    b = make_broker("-o", "max_output=64KiB")
    c = Raw(b, timeout=10)
    c.connect()
    c.frame("SUBSCRIBE", {"id": "s", "destination": "/queue/win", "ack": "client-individual",
                          "activemq.prefetchSize": "10", "receipt": "sub"})
    assert c.recv()["command"] == "RECEIPT"
    done = threading.Event()
    threading.Thread(target=produce, args=(b, "/queue/win", done), daemon=True).start()
    wait_for(lambda: done.is_set(), timeout=20, what="the producer's last receipt")
    assert Control(b).ok("show /queue/win")["depth"] >= N - 10
    c.close()
