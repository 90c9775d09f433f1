#!/usr/bin/env python3
"""tests/abuse/battery.py: hostile clients against a real broker, judged by numbers.

  tests/abuse/battery.py [--short] [--build DIR] [--only NAME,...]

Each case starts a fresh broker on loopback, measures a probe client's
round trip (SEND with a receipt to its own queue) while idle, runs the
abuse while the probe keeps measuring, and then asserts:

  - the broker's resident memory stayed under the case's bound (peak RSS,
    sampled every 20 ms);
  - the probe's round-trip p99 during the abuse stayed within 3 times its
    idle p99 (with a floor of 1 ms above the idle p99: loopback round trips
    of a tenth of a millisecond are noise at that scale). --short, which CI
    runs on machines shared with other work, allows 100 ms above the idle
    p99 instead: it catches a broker that stalls, not scheduling noise;
  - every probe message that got a RECEIPT is delivered afterwards (nothing
    acknowledged is lost), and the broker is still alive and exits cleanly.

--short runs every case with smaller numbers (CI runs it against the
Release build); without it, the numbers of issue 21 (ci/abuse).
Prints one line per case and exits 1 if any bound was broken.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def raise_nofile(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


class Broker:
    def __init__(self, build, args=()):
        self.tmp = tempfile.mkdtemp(prefix="mqabuse-")
        self.port = free_port()
        conn_file = os.path.join(self.tmp, "conn.json")
        self.log = open(os.path.join(self.tmp, "log"), "w")
        cmd = [os.path.join(build, "bin", "mqbroker"), "-i", "127.0.0.1", "-p", str(self.port), "-l", "1",
               "--data-dir", os.path.join(self.tmp, "data"), "-c", conn_file, *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 20
        while not os.path.exists(conn_file):
            if self.proc.poll() is not None or time.time() > end:
                raise RuntimeError("the broker did not start: " + open(os.path.join(self.tmp, "log")).read())
            time.sleep(0.02)
        self.peak = rss(self.proc.pid)
        self.base = self.peak
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss(self.proc.pid))

    def stop(self):
        self._stop.set()
        self._t.join()
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return alive, rc


def read_until(s, marker):
    """What s sends up to and including marker; None when it closes first."""
    buf = b""
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return buf


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    buf = read_until(s, b"\0")
    if buf is None:
        raise ConnectionError("closed during CONNECT")
    if not buf.startswith(b"CONNECTED"):
        raise ConnectionError(buf[:200].decode(errors="replace"))
    return s


def probe_main(port, interval, conn):
    """The probe, in a process of its own so that the abuse (in this one)
    does not slow its measurements: sends SEND-with-receipt every interval
    and reports each round trip in ms, or an error, through conn. It always
    waits for "stop" before it exits, so that nothing it sent is lost to a
    closed pipe."""
    probe_loop(port, interval, conn)
    conn.recv()
    conn.send(("done", None))


def probe_loop(port, interval, conn):
    try:
        sock = connect(port)
    except OSError as e:
        conn.send(("error", str(e)))
        return
    sock.settimeout(10)
    buf, n = b"", 0
    while not conn.poll():
        n += 1
        t0 = time.perf_counter()
        try:
            sock.sendall(f"SEND\ndestination:/queue/probe\nreceipt:p{n}\n\nprobe {n}\0".encode())
            while b"\0" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("probe connection closed")
                buf += chunk
        except OSError as e:
            conn.send(("error", str(e)))
            return
        frame, _, buf = buf.partition(b"\0")
        if not frame.lstrip(b"\n").startswith(b"RECEIPT"):
            conn.send(("error", frame[:200].decode(errors="replace")))
            return
        conn.send(("rtt", (time.time(), (time.perf_counter() - t0) * 1000)))
        time.sleep(interval)
    sock.close()


class Probe:
    """Round trips of SEND-with-receipt on a connection of its own. A
    thread here empties the pipe as the samples come: a full pipe would
    stop the probe in the middle of the abuse it is there to measure."""

    def __init__(self, port, interval=0.001):
        import multiprocessing
        self.parent, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=probe_main, args=(port, interval, child), daemon=True)
        self.proc.start()
        self.samples, self.errors = [], []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self):
        while True:
            try:
                kind, v = self.parent.recv()
            except (EOFError, OSError) as e:
                if self.proc.is_alive():
                    self.errors.append(f"the probe process went away: {e}")
                return
            with self._lock:
                if kind == "rtt":
                    self.samples.append(v)
                elif kind == "done":
                    return
                else:
                    self.errors.append(v)

    def window(self, t0, t1):
        with self._lock:
            return [rtt for (t, rtt) in self.samples if t0 <= t <= t1]

    @property
    def receipted(self):
        with self._lock:
            return len(self.samples)

    def stop(self):
        self.parent.send("stop")
        self._reader.join(15)
        self.proc.join(15)


def p99(xs):
    if not xs:
        return float("inf")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def delivered(port, want):
    """Consumes /queue/probe and counts what arrives."""
    s = connect(port)
    s.sendall(b"SUBSCRIBE\nid:d\ndestination:/queue/probe\n\n\0")
    s.settimeout(2)
    n, buf = 0, b""
    try:
        while n < want:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            n = buf.count(b"\0")
    except socket.timeout:
        pass
    s.close()
    return n


# ---- the cases: each takes (port, scale) and does its harm ----

def half_open(port, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    # a real client still gets in quickly
    t0 = time.time()
    connect(port).close()
    took = time.time() - t0
    time.sleep(1)
    for s in socks:
        s.close()
    if took > 1.0:
        return f"a real client took {took:.2f} s to connect"
    return None


def slowloris(port, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    frame = b"CONNECT\naccept-version:1.2\nhost:/\n"
    for i in range(len(frame)):
        for s in socks:
            try:
                s.send(frame[i:i + 1])
            except OSError:
                pass
        time.sleep(0.05)
    for s in socks:
        s.close()
    return None


def huge_content_length(port, _):
    s = connect(port)
    s.sendall(b"SEND\ndestination:/queue/x\ncontent-length:1073741824\n\n" + b"x" * 65536)
    s.settimeout(5)
    data = s.recv(4096)
    s.close()
    return None if b"ERROR" in data else "no ERROR for a 1 GiB content-length"


def many_headers(port, n):
    s = connect(port)
    head = b"SEND\ndestination:/queue/x\n" + b"".join(b"h%d:v\n" % i for i in range(n)) + b"\n\0"
    try:
        s.sendall(head)
    except OSError:
        pass
    s.settimeout(5)
    try:
        data = s.recv(4096)
    except OSError:
        data = b""
    s.close()
    return None if b"ERROR" in data else f"no ERROR for {n} headers"


def never_reading_consumer(port, megabytes):
    q = connect(port)
    q.sendall(b"SUBSCRIBE\nid:q\ndestination:/queue/sink\n\n\0")
    t = connect(port)
    t.sendall(b"SUBSCRIBE\nid:t\ndestination:/topic/sink\n\n\0")
    for s in (q, t):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    time.sleep(0.2)
    p = connect(port)
    body = b"x" * 100_000
    for dest in (b"/queue/sink", b"/topic/sink"):
        frame = b"SEND\ndestination:" + dest + b"\ncontent-length:100000\n\n" + body + b"\0"
        for _ in range(megabytes * 10):
            p.sendall(frame)
    p.sendall(b"SEND\ndestination:/queue/end\nreceipt:end\n\n\0")
    p.settimeout(120)
    if read_until(p, b"receipt-id:end") is None:
        return "the producer was disconnected"
    for s in (p, q, t):
        s.close()
    return None


def connect_disconnect(port, n):
    for i in range(n):
        s = connect(port)
        s.sendall(b"DISCONNECT\n\n\0")
        s.close()
    return None


def many_subscriptions(port, n):
    s = connect(port)
    out = b"".join(b"SUBSCRIBE\nid:s%d\ndestination:/queue/many.%d\n\n\0" % (i, i) for i in range(n))
    try:
        s.sendall(out)
    except OSError:
        pass
    s.close()
    return None


def endless_transaction(port, n):
    """n SENDs in a transaction that is never committed: the broker holds
    them all (a receipt after the last proves it read them), then drops
    them when the connection goes."""
    s = connect(port)
    s.sendall(b"BEGIN\ntransaction:t\n\n\0")
    frame = b"SEND\ndestination:/queue/tx\ntransaction:t\n\nx\0"
    batch = frame * 1000
    for _ in range(n // 1000):
        s.sendall(batch)
    s.sendall(b"BEGIN\ntransaction:u\nreceipt:held\n\n\0")
    s.settimeout(120)
    buf = read_until(s, b"\0")
    s.close()
    if buf is None:
        return "the connection closed before the transaction was held"
    if not buf.startswith(b"RECEIPT"):
        return "expected a RECEIPT after the transaction's SENDs, got " + buf[:200].decode(errors="replace")
    return None


# name, function, full scale, short scale, RSS bound in MiB (full, short), broker args
CASES = [
    ("5,000 half-open connections", half_open, 5000, 1500, (64, 48), ()),
    ("slowloris CONNECTs", slowloris, 500, 200, (48, 40), ("-o", "frame_timeout=1000")),
    ("a 1 GiB content-length", huge_content_length, 0, 0, (32, 32), ()),
    ("100,000 headers", many_headers, 100000, 100000, (48, 48), ()),
    ("a consumer that never reads, 200 MB to its queue and its topic", never_reading_consumer, 200, 20,
     (320, 96), ("-o", "slow_consumer_timeout=1000")),
    ("20,000 rapid connect/disconnects", connect_disconnect, 20000, 2000, (48, 40), ()),
    ("one connection subscribing to 10,000 destinations", many_subscriptions, 10000, 10000, (64, 64),
     ("-o", "max_subscriptions=10000")),
    ("a transaction of a million SENDs never committed", endless_transaction, 1000000, 150000, (320, 64),
     ("-o", "max_transaction_frames=2000000", "-o", "max_transaction_bytes=1GiB")),
]


def abuse_main(fn, port, scale, conn):
    # A real attacker does not run on the broker's machine: on one CPU of
    # its own and at the lowest priority, the abuse still does all its
    # harm to the broker, but on a 2-core machine it does not also take the
    # CPU the broker and the probe need, which would measure the scheduler
    # rather than the broker. (Its loopback sends do the receiving side's
    # TCP work in its own context, where nothing can preempt it.)
    os.nice(19)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    raise_nofile(30000)
    try:
        conn.send(fn(port, scale))
    except Exception as e:  # the abuse itself broke: a failure of the case
        conn.send(f"{type(e).__name__}: {e}")


def abuse(fn, port, scale):
    """Runs one case's abuse in a process of its own; its verdict or None."""
    import multiprocessing
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=abuse_main, args=(fn, port, scale, child), daemon=True)
    proc.start()
    problem = parent.recv() if parent.poll(600) else "the abuse did not finish within 10 minutes"
    proc.join(10)
    return problem


def run_case(build, name, fn, scale, bound_mib, args, slack_ms):
    b = Broker(build, ("-n", "20000") + tuple(args) if fn is half_open and scale > 1024 else tuple(args))
    probe = Probe(b.port)
    time.sleep(0.5)
    i0 = time.time()
    time.sleep(2.0)
    i1 = t0 = time.time()
    problem = abuse(fn, b.port, scale)
    took = time.time() - t0
    if took < 1.0:
        time.sleep(1.0 - took)   # the probe measures at least a second of it
    t1 = time.time()
    probe.stop()
    idle, during = probe.window(i0, i1), probe.window(t0, t1)
    want = probe.receipted
    got = delivered(b.port, want)
    peak = b.peak
    alive, rc = b.stop()
    limit = max(3 * p99(idle), p99(idle) + slack_ms)
    verdicts = []
    if problem:
        verdicts.append(problem)
    if len(idle) < 100 or len(during) < 50:
        verdicts.append(f"the probe measured too little ({len(idle)} round trips idle, {len(during)} during)")
    if peak > bound_mib * 1048576:
        verdicts.append(f"peak RSS {peak / 1048576:.0f} MiB over {bound_mib} MiB")
    slow = p99(during) > limit
    if slow:
        verdicts.append(f"probe p99 {p99(during):.2f} ms over {limit:.2f} ms (idle p99 {p99(idle):.2f} ms)")
    if probe.errors:
        verdicts.append(f"probe failed: {probe.errors[0]}")
    if got < want:
        verdicts.append(f"lost {want - got} of {want} receipted probe messages")
    if not alive or rc != 0:
        verdicts.append(f"broker {'died' if not alive else 'exited with ' + str(rc)}")
    line = (f"{'FAIL' if verdicts else 'ok  '} {name}: peak RSS {peak / 1048576:.0f} MiB (bound {bound_mib}), "
            f"probe p99 idle {p99(idle):.2f} ms, during {p99(during):.2f} ms over {len(during)} round trips, "
            f"{got}/{want} receipted delivered, {took:.1f} s")
    if verdicts:
        line += "\n       " + "; ".join(verdicts)
    print(line, flush=True)
    if slow and len(verdicts) == 1:
        return "slow"
    return not verdicts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    raise_nofile(30000)
    ok = True
    for name, fn, full, short, (bfull, bshort), extra in CASES:
        if args.only and not any(o in name for o in args.only.split(",")):
            continue
        scale = short if args.short else full
        bound = bshort if args.short else bfull
        slack = 100.0 if args.short else 1.0
        verdict = run_case(args.build, name, fn, scale, bound, extra, slack)
        if verdict == "slow":
            # On a small machine, a virtual one above all, a late round
            # trip can be the scheduler's (waking an idle virtual CPU
            # takes milliseconds at times); a broker that stalls is late
            # again.
            print("       (only the probe was late: once more)", flush=True)
            verdict = run_case(args.build, name, fn, scale, bound, extra, slack)
        ok &= verdict is True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
