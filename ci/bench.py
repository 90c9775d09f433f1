#!/usr/bin/env python3
"""ci/bench.py: mqbroker side by side with RabbitMQ and ActiveMQ.

Run through ci/bench, which installs the peers and builds Release first.
Starts each broker on loopback on its own port, runs the same workloads
against each with the scenario runner's C load generator (mqsh run
scenarios/bench/workload.lua), three times each (the median is kept),
measures the broker's CPU time and memory from /proc, stops everything,
and writes docs/benchmarks.md.

  ci/bench                       everything (about 20 minutes)
  ci/bench --quick               one run per workload, shorter runs
  ci/bench --only mqbroker,relay skip the peers
  ci/bench --only mqbroker,relay,stompload   the second generator too (default: all)
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
MQBROKER = os.path.join(BUILD, "bin", "mqbroker")
MQSH = os.path.join(BUILD, "bin", "mqsh")
RELAY = os.path.join(BUILD, "bin", "relay")
WORKLOAD = os.path.join(ROOT, "scenarios", "bench", "workload.lua")
SELECTORS = os.path.join(ROOT, "scenarios", "bench", "selectors.lua")
# The second, independent load generator: built from the shared tools, never
# copied into the project.
# Its directory may be read-only: make runs in the build tree, finding the
# sources through VPATH.
STOMPLOAD_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "tools", "stompload"))
STOMPLOAD_BUILD = os.path.join(BUILD, "stompload")
STOMPLOAD = os.path.join(STOMPLOAD_BUILD, "stompload")
STOMPRELAY = os.path.join(STOMPLOAD_BUILD, "stomprelay")
OUT = os.path.join(ROOT, "docs", "benchmarks.md")
NOTES = os.path.join(ROOT, "ci", "bench-notes.md")


def free_port(span=1):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if span == 1 or all(port_free(port + i) for i in range(1, span)):
            return port


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def proc_rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of a process while a workload runs, sampled every 50 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, proc_rss(pid), threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, proc_rss(self.pid))

    def done(self):
        self.stop.set()
        self.t.join()
        return self.peak


def wait_port(port, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


# ---- targets ----

class Target:
    name = ""
    vhost = None
    pid = None

    def start(self):
        raise NotImplementedError

    def fsyncs(self):
        """The journal's fsync count so far, where the broker tells it."""
        return None

    def stop(self):
        pass


class MqBroker(Target):
    name = "mqbroker"

    def __init__(self, config=None, label="mqbroker"):
        self.name = label
        self.config = config

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="mqbench-")
        self.port = free_port()
        cmd = [MQBROKER, "-i", "127.0.0.1", "-p", str(self.port), "-n", "20000", "-l", "1",
               "--data-dir", os.path.join(self.dir, "data"), "-c", os.path.join(self.dir, "conn.json")]
        if self.config:
            path = os.path.join(self.dir, "broker.lua")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["-f", path]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        if not wait_port(self.port, 20):
            raise RuntimeError(f"mqbroker did not start; see {self.dir}/log")
        self.pid = self.proc.pid

    def fsyncs(self):
        p = subprocess.run([MQSH, "--json", "-S", os.path.join(self.dir, "data", "mqbroker.sock"), "stats"],
                           capture_output=True, text=True)
        try:
            return json.loads(p.stdout)["data"].get("journal_fsyncs")
        except (ValueError, KeyError, TypeError):
            return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Relay(Target):
    """The load generator's ceiling; with fanout, every frame to every consumer (topic workloads)."""

    def __init__(self, fanout=False):
        self.fanout = fanout
        self.name = "relay fan-out" if fanout else "relay"

    def start(self):
        self.port = free_port()
        cmd = [RELAY, "-i", "127.0.0.1", "-p", str(self.port)] + (["-f"] if self.fanout else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10):
            raise RuntimeError("the relay did not start")
        self.pid = self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


class StompRelay(Target):
    """stompload's own trivial relay: that generator's ceiling."""
    name = "stomprelay"

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen([STOMPRELAY, str(self.port), "127.0.0.1", "3600"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10):
            raise RuntimeError("stomprelay did not start")
        self.pid = self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Peer(Target):
    """RabbitMQ or ActiveMQ, through ci/peers.sh."""

    def __init__(self, kind):
        self.kind = self.name = kind
        self.vhost = "/" if kind == "rabbitmq" else None

    def sh(self, fn, *args):
        return subprocess.run(["bash", "-c", f'source "{ROOT}/ci/peers.sh"; {fn} "$@"', "peers", *map(str, args)],
                              capture_output=True, text=True)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix=f"mqbench-{self.kind}-")
        self.port = free_port(3)
        r = self.sh("peer_start", self.kind, self.port, self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{self.kind} did not start: {r.stderr.strip()}")
        time.sleep(3)  # let the JVM and Erlang warm their listeners up
        pid = self.sh("peer_pid", self.kind, self.dir).stdout.strip()
        if self.kind == "rabbitmq" and not pid:
            out = subprocess.run(["pgrep", "-f", "beam.*mqbench"], capture_output=True, text=True).stdout.split()
            pid = out[0] if out else ""
        self.pid = int(pid) if pid else None

    def stop(self):
        self.sh("peer_stop", self.kind, self.dir)
        if self.kind == "rabbitmq":
            subprocess.run(["pkill", "-f", "beam.*mqbench"], capture_output=True)
            subprocess.run(["pkill", "-f", "epmd"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def version(self):
        return self.sh("peer_version", self.kind).stdout.strip()


# ---- workloads ----

WORKLOADS = [
    # name, environment for workload.lua, targets beyond the brokers
    ("queue 1→1, 100 B", dict(MQB_SIZE=100), ["relay"]),
    ("queue 1→1, 1 KiB", dict(MQB_SIZE=1024), []),
    ("queue 1→1, 64 KiB", dict(MQB_SIZE=65536), []),
    ("queue 4→4, 100 B", dict(MQB_SIZE=100, MQB_PRODUCERS=4, MQB_CONSUMERS=4), []),
    ("queue 4→4, 1 KiB", dict(MQB_SIZE=1024, MQB_PRODUCERS=4, MQB_CONSUMERS=4), []),
    ("queue 4→4, 64 KiB", dict(MQB_SIZE=65536, MQB_PRODUCERS=4, MQB_CONSUMERS=4), []),
    ("topic 1→50, 100 B (deliveries/s)", dict(MQB_SIZE=100, MQB_CONSUMERS=50, MQB_DEST="/topic/bench", MQB_LOSSY=1),
     ["relay fan-out"]),
    ("persistent, receipt per message (window 100), client-individual acks, 1 producer",
     dict(MQB_PERSISTENT=1, MQB_RECEIPTS=100, MQB_ACK="client-individual"), []),
    ("persistent, receipt per message (window 100), client-individual acks, 4 producers",
     dict(MQB_PERSISTENT=1, MQB_RECEIPTS=100, MQB_ACK="client-individual", MQB_PRODUCERS=4), []),
    ("latency at a fixed 10,000 msg/s", dict(MQB_RATE=10000, MQB_DURATION=10), []),
]
ROUTE_WORKLOAD = ("queue 1→1, 100 B, trivial Lua route()", dict(MQB_SIZE=100))


def run_workload(target, env_extra, duration, run_no):
    env = dict(os.environ)
    env.update({k: str(v) for k, v in env_extra.items()})
    env.setdefault("MQB_DURATION", str(duration))
    env["MQB_HOST"], env["MQB_PORT"] = "127.0.0.1", str(target.port)
    if target.vhost:
        env["MQB_VHOST"] = target.vhost
    dest = env.get("MQB_DEST", "/queue/bench")
    env["MQB_DEST"] = f"{dest}-{run_no}"
    fsyncs0 = target.fsyncs()
    cpu0 = proc_cpu_s(target.pid) if target.pid else 0
    sampler = RssSampler(target.pid) if target.pid else None
    p = subprocess.run([MQSH, "--json", "run", WORKLOAD], capture_output=True, text=True, env=env, timeout=900)
    peak = sampler.done() if sampler else 0
    cpu = (proc_cpu_s(target.pid) - cpu0) if target.pid else 0
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr.strip().splitlines() or ["no report"])[-1]}
    rep = json.loads(lines[-1])
    received = rep.get("received", 0) or 1
    fsyncs1 = target.fsyncs()
    extra = {}
    if fsyncs0 is not None and fsyncs1 is not None and rep.get("duration_s"):
        extra["fsyncs_per_s"] = (fsyncs1 - fsyncs0) / rep["duration_s"]
    return {
        **extra,
        "msgs_per_s": rep.get("msgs_per_s", 0),
        "p50": rep.get("latency_p50_ms"), "p99": rep.get("latency_p99_ms"), "p999": rep.get("latency_p999_ms"),
        "cpu_us": cpu / received * 1e6, "rss": peak, "received": received,
    }


def median_runs(runs):
    ok = [r for r in runs if "msgs_per_s" in r]
    if not ok:
        return runs[-1]
    out = {}
    for key in ("msgs_per_s", "p50", "p99", "p999", "cpu_us", "fsyncs_per_s"):
        vals = [r[key] for r in ok if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    out["rss"] = max(r["rss"] for r in ok)
    out["runs"] = len(ok)
    return out


# ---- the second generator: stompload ----

# name, stompload arguments (issue 18's command lines)
STOMPLOAD_WORKLOADS = [
    ("queue 1→1, 100 B", ["-m", "queue", "-P", "1", "-C", "1", "-s", "100", "--inflight", "2000"]),
    ("queue 4→4, 100 B", ["-m", "queue", "-P", "4", "-C", "4", "-s", "100", "--inflight", "8000"]),
    ("queue 1→1, 1 KiB", ["-m", "queue", "-P", "1", "-C", "1", "-s", "1024", "--inflight", "2000"]),
    ("queue 4→4, 1 KiB", ["-m", "queue", "-P", "4", "-C", "4", "-s", "1024", "--inflight", "8000"]),
    ("queue 1→1, 64 KiB", ["-m", "queue", "-P", "1", "-C", "1", "-s", "65536", "--inflight", "200"]),
    ("topic 1→50, 100 B (deliveries/s)", ["-m", "topic", "-P", "1", "-C", "50", "-s", "100", "--inflight", "2000"]),
]


def build_stompload():
    if not os.path.isdir(STOMPLOAD_DIR):
        return "no ../shared/tools/stompload beside the project"
    os.makedirs(STOMPLOAD_BUILD, exist_ok=True)
    p = subprocess.run(["make", "-f", os.path.join(STOMPLOAD_DIR, "Makefile"), "VPATH=" + STOMPLOAD_DIR],
                       cwd=STOMPLOAD_BUILD, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(STOMPLOAD):
        return "make of ../shared/tools/stompload failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def run_stompload(target, args, duration):
    cmd = [STOMPLOAD, "-H", "127.0.0.1", "-p", str(target.port), "-u", "guest", "-w", "guest", "-a", "auto",
           "--prefetch", "1000", "-d", str(duration)] + args
    if target.vhost:
        cmd += ["-V", target.vhost]
    cpu0 = proc_cpu_s(target.pid) if target.pid else 0
    sampler = RssSampler(target.pid) if target.pid else None
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    peak = sampler.done() if sampler else 0
    cpu = (proc_cpu_s(target.pid) - cpu0) if target.pid else 0
    line = next((l for l in p.stdout.splitlines() if l.startswith("stompload ")), None)
    if not line:
        return {"error": (p.stderr.strip().splitlines() or ["no report"])[-1]}
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    delivered = float(kv.get("delivered", 0)) or 1
    return {
        "msgs_per_s": float(kv.get("recv_rate", 0)),
        "p50": float(kv.get("p50_us", 0)) / 1000, "p99": float(kv.get("p99_us", 0)) / 1000,
        "p999": float(kv.get("p999_us", 0)) / 1000,
        "cpu_us": cpu / delivered * 1e6, "rss": peak, "received": delivered,
        "lost": int(kv.get("lost", 0)),
    }


def many_connections(target, duration, queues=1000):
    """1,000 queues, each with its own producer and consumer connection, at
    100 B (the scenario runner): the broker's CPU per message and how evenly
    the consumers were served."""
    env = dict(os.environ, MQB_HOST="127.0.0.1", MQB_PORT=str(target.port), MQB_QUEUES=str(queues),
               MQB_DURATION=str(duration), MQB_SIZE="100")
    cpu0 = proc_cpu_s(target.pid)
    p = subprocess.run([MQSH, "--json", "run", os.path.join(ROOT, "scenarios", "bench", "many_queues.lua")],
                       capture_output=True, text=True, env=env, timeout=900)
    cpu = proc_cpu_s(target.pid) - cpu0
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr.strip().splitlines() or ["no report"])[-1]}
    rep = json.loads(lines[-1])
    received = rep.get("received", 0) or 1
    shares = rep.get("received_by") or []
    med = statistics.median(shares) if shares else 0
    return {"msgs_per_s": rep.get("msgs_per_s", 0), "cpu_us": cpu / received * 1e6,
            "min_share": min(shares) if shares else 0, "max_share": max(shares) if shares else 0,
            "median_share": med}


def large_in_flight(target, count=10000, size=65536):
    """Peak RSS over a backlog of count messages of size bytes, divided."""
    base = proc_rss(target.pid)
    sampler = RssSampler(target.pid)
    blast(target.port, "/queue/big", count, size)
    time.sleep(0.5)
    peak = sampler.done()
    return (peak - base) / count


def selectors_ratio(target, duration, runs):
    """msgs/s of a queue with 10 consumers holding different selectors of
    three comparisons, over the same queue without selectors."""
    out = {}
    for with_sel in ("0", "1"):
        rates = []
        for i in range(runs):
            env = dict(os.environ, MQB_HOST="127.0.0.1", MQB_PORT=str(target.port), MQB_SELECTORS=with_sel,
                       MQB_DURATION=str(duration), MQB_DEST=f"/queue/sel-{with_sel}-{i}")
            p = subprocess.run([MQSH, "--json", "run", SELECTORS], capture_output=True, text=True, env=env,
                               timeout=600)
            lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
            if lines:
                rates.append(json.loads(lines[-1]).get("msgs_per_s", 0))
        out[with_sel] = statistics.median(rates) if rates else 0
    return out["0"], out["1"]


# ---- mqbroker-only figures ----

def idle_connections(target, n):
    base = proc_rss(target.pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", target.port))
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
        socks.append(s)
    for s in socks:
        s.settimeout(30)
        s.recv(4096)
    time.sleep(1)
    per = (proc_rss(target.pid) - base) / n
    for s in socks:
        s.close()
    time.sleep(1)
    return per


def blast(port, dest, count, size, persistent=False, vhost="/"):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"CONNECT\naccept-version:1.2\nhost:{vhost}\nlogin:guest\npasscode:guest\n\n\0".encode())
    s.recv(4096)
    frame = f"SEND\ndestination:{dest}\n{'persistent:true' + chr(10) if persistent else ''}\n".encode() + b"x" * size + b"\0"
    batch = frame * 1000
    for _ in range(count // 1000):
        s.sendall(batch)
    s.sendall(b"SEND\ndestination:/queue/bench-end\nreceipt:end\n\n\0")
    buf = b""
    s.settimeout(600)
    while b"receipt-id:end" not in buf:
        buf += s.recv(65536)
    s.close()


def backlog(target, count=1000000):
    base = proc_rss(target.pid)
    blast(target.port, "/queue/backlog", count, 100, vhost=target.vhost or "/")
    time.sleep(1)
    return (proc_rss(target.pid) - base) / count


def startup():
    times, rss = [], []
    for _ in range(5):
        d = tempfile.mkdtemp(prefix="mqbench-start-")
        cf = os.path.join(d, "c.json")
        t0 = time.perf_counter()
        p = subprocess.Popen([MQBROKER, "-i", "127.0.0.1", "-p", "0", "--data-dir", os.path.join(d, "data"), "-c", cf],
                             stderr=subprocess.DEVNULL)
        while not os.path.exists(cf):
            time.sleep(0.0005)
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.5)
        rss.append(proc_rss(p.pid))
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)
    return statistics.median(times), statistics.median(rss)


def recovery(count=1000000):
    t = MqBroker()
    t.start()
    subprocess.run([MQSH, "-S", os.path.join(t.dir, "data", "mqbroker.sock"), "create", "queue", "/queue/recover",
                    "persistent"], capture_output=True)
    blast(t.port, "/queue/recover", count, 100)
    t.proc.kill()
    t.proc.wait()
    t0 = time.perf_counter()
    cf = os.path.join(t.dir, "conn.json")
    os.unlink(cf)
    log = os.path.join(t.dir, "log2")
    p = subprocess.Popen([MQBROKER, "-i", "127.0.0.1", "-p", "0", "-l", "3", "--data-dir", os.path.join(t.dir, "data"),
                          "-c", cf], stderr=open(log, "w"))
    while not os.path.exists(cf):
        time.sleep(0.001)
    ready = time.perf_counter() - t0
    p.terminate()
    p.wait()
    text = open(log).read()
    m = re.search(r"journal: recovered (\d+) messages .* in ([0-9.]+) s", text)
    shutil.rmtree(t.dir, ignore_errors=True)
    return (int(m.group(1)) if m else 0), (float(m.group(2)) if m else None), ready


# ---- report ----

def fmt_rate(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_ms(v):
    return "–" if v is None else f"{v:.2f}"


def fmt_mib(v):
    return f"{v / 1048576:.0f} MiB" if v else "–"


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Linux {platform.release()}"


def write_report(args, results, peers, extras, started, second=None):
    brokers = [t for t in ["mqbroker", "rabbitmq", "activemq"] if t in args.only]
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Written by `ci/bench` (do not edit by hand: edit `ci/bench.py` or `ci/bench-notes.md` and run it again).")
    w("")
    w(f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: `{' '.join(['ci/bench'] + sys.argv[1:])}`")
    w(f"- Machine: {machine()}; broker and load generator on the same machine, over loopback")
    w(f"- mqbroker {subprocess.run([MQBROKER, '--version'], capture_output=True, text=True).stdout.split()[-1]}"
      f" (Release build)" + "".join(f"; {k} {v}" for k, v in peers.items()))
    w(f"- Load generator: the scenario runner (`mqsh run scenarios/bench/workload.lua`), C producers and consumers"
      f" on one event loop; {args.duration} s of sending per run, median of {args.runs} run(s)")
    w("- CPU per message: the broker process's user + system time over the run divided by messages delivered;"
      " peak RSS: the broker process's resident memory, sampled every 50 ms (mqbroker is restarted for each"
      " workload; RabbitMQ's and ActiveMQ's figure is the peak since they started, the earlier workloads"
      " included, since they take many seconds to start)")
    w("")
    w("## Throughput and latency")
    w("")
    w("| workload | broker | msgs/s | p50 ms | p99 ms | p99.9 ms | CPU µs/msg | peak RSS |" +
      "".join(f" ×{p} |" for p in brokers if p != "mqbroker"))
    w("|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (len(brokers) - 1 if "mqbroker" in brokers else 0))
    for name, per in results:
        for tname, r in per.items():
            if "error" in r:
                w(f"| {name} | {tname} | failed: {r['error'][:80]} | | | | | |" + " |" * (len(brokers) - 1))
                continue
            ratios = ""
            for p in brokers:
                if p == "mqbroker":
                    continue
                if tname == "mqbroker" and p in per and per[p].get("msgs_per_s"):
                    ratios += f" {r['msgs_per_s'] / per[p]['msgs_per_s']:.1f} |"
                else:
                    ratios += " |"
            w(f"| {name} | {tname} | {fmt_rate(r.get('msgs_per_s'))} | {fmt_ms(r.get('p50'))} | {fmt_ms(r.get('p99'))} |"
              f" {fmt_ms(r.get('p999'))} | {r.get('cpu_us', 0):.2f} | {fmt_mib(r.get('rss'))} |{ratios}")
    w("")
    w("The ×PEER columns are mqbroker's messages/s divided by the peer's in the same run. The relay rows are the load"
      " generator's own ceiling: a program that copies bytes and parses nothing (tests/bench/relay.c); for the"
      " topic, \"relay fan-out\" copies each frame to every consumer.")
    fs = [(name, per["mqbroker"]["fsyncs_per_s"]) for name, per in results
          if "mqbroker" in per and per["mqbroker"].get("fsyncs_per_s") and "persistent" in name]
    if fs:
        w("")
        w("Journal fsyncs per second during the persistent workloads (group commit: one fsync covers every record"
          " written since the last): " + "; ".join(f"{n.split(', ')[-1]}: {v:,.0f} fsyncs/s" for n, v in fs) + ".")
    if second:
        w("")
        w("## The second generator: stompload")
        w("")
        w("The same workloads through an independent load generator (`../shared/tools/stompload`, a plain epoll"
          " STOMP client with batched writes and 1 MiB reads, built by this script), with its own trivial relay"
          " (`stomprelay`) as the ceiling. Options: `-a auto --prefetch 1000`, `--inflight` as in each row, 8 s"
          f" or more per run, median of {args.runs}.")
        w("")
        others = [b for b in ("rabbitmq", "activemq") if b in args.only]
        w("| workload | stompload args | broker | msgs/s | p99 ms | CPU µs/msg | ×relay |" +
          "".join(f" ×{p} |" for p in others))
        w("|---|---|---|---:|---:|---:|---:|" + "---:|" * len(others))
        for name, sl_args in STOMPLOAD_WORKLOADS:
            per = second.get(name, {})
            relay = per.get("stomprelay", {}).get("msgs_per_s")
            for tname, r in per.items():
                if "error" in r:
                    w(f"| {name} | `{' '.join(sl_args)}` | {tname} | failed: {r['error'][:60]} | | | |" + " |" * len(others))
                    continue
                ratio = f"{r['msgs_per_s'] / relay:.2f}" if relay and tname != "stomprelay" else ""
                peer_ratios = "".join(
                    f" {r['msgs_per_s'] / per[p]['msgs_per_s']:.1f} |" if tname == "mqbroker" and per.get(p, {}).get("msgs_per_s")
                    else " |" for p in others)
                w(f"| {name} | `{' '.join(sl_args)}` | {tname} | {fmt_rate(r.get('msgs_per_s'))} | {fmt_ms(r.get('p99'))} |"
                  f" {r.get('cpu_us', 0):.2f} | {ratio} |{peer_ratios}")
    w("")
    w("## Memory and start-up (mqbroker)")
    w("")
    w("| figure | value |")
    w("|---|---|")
    for k, v in extras:
        w(f"| {k} | {v} |")
    w("")
    if os.path.exists(NOTES):
        w(open(NOTES).read().rstrip())
        w("")
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print(f"ci/bench: wrote {OUT}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one run per workload, 3 s each")
    ap.add_argument("--only", default="mqbroker,relay,rabbitmq,activemq,stompload")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration = 1, 3
    args.only = args.only.split(",")
    started = datetime.datetime.utcnow()
    results, peers, extras = [], {}, []

    targets = {}
    if "mqbroker" in args.only:
        targets["mqbroker"] = MqBroker()
    if "relay" in args.only:
        targets["relay"] = Relay()
        targets["relay fan-out"] = Relay(fanout=True)
    for kind in ("rabbitmq", "activemq"):
        if kind in args.only:
            targets[kind] = Peer(kind)
            peers[kind] = targets[kind].version()

    per_workload = {name: {} for name, _, _ in WORKLOADS}
    for tname, t in targets.items():
        print(f"ci/bench: starting {tname}", flush=True)
        try:
            t.start()
        except RuntimeError as e:
            print(f"ci/bench: {e}", flush=True)
            for name, _, _ in WORKLOADS:
                per_workload[name][tname] = {"error": str(e)}
            continue
        try:
            for name, env, extra in WORKLOADS:
                if tname.startswith("relay") and tname not in extra:
                    continue
                if tname == "mqbroker" and name != WORKLOADS[0][0]:
                    # a fresh process per workload, so that its peak RSS is
                    # this workload's (the JVM and Erlang peers take too long
                    # to start for that: theirs is since their start)
                    t.stop()
                    t.start()
                runs = []
                for i in range(args.runs):
                    print(f"ci/bench: {tname}: {name} (run {i + 1}/{args.runs})", flush=True)
                    runs.append(run_workload(t, env, args.duration, i))
                per_workload[name][tname] = median_runs(runs)
                print(f"ci/bench:   {per_workload[name][tname]}", flush=True)
            if tname in ("rabbitmq", "activemq", "mqbroker"):
                n = 10000 if tname == "mqbroker" else 2000
                print(f"ci/bench: {tname}: {n} idle connections", flush=True)
                per = idle_connections(t, n)
                extras.append((f"idle connection, {tname} ({n} held)", f"{per / 1024:.1f} KiB each"))
        finally:
            t.stop()
    results = [(name, per_workload[name]) for name, _, _ in WORKLOADS]

    second = {}
    if "stompload" in args.only:
        why = build_stompload()
        if why:
            print(f"ci/bench: {why}", flush=True)
        else:
            sl_targets = {k: v for k, v in targets.items() if k in ("mqbroker", "rabbitmq", "activemq")}
            if "relay" in args.only:
                sl_targets["stomprelay"] = StompRelay()
            second = {name: {} for name, _ in STOMPLOAD_WORKLOADS}
            for tname, t in sl_targets.items():
                print(f"ci/bench: stompload: starting {tname}", flush=True)
                try:
                    t.start()
                except RuntimeError as e:
                    print(f"ci/bench: {e}", flush=True)
                    continue
                try:
                    for name, sl_args in STOMPLOAD_WORKLOADS:
                        if tname == "mqbroker":
                            t.stop()
                            t.start()
                        runs = []
                        for i in range(args.runs):
                            print(f"ci/bench: stompload: {tname}: {name} (run {i + 1}/{args.runs})", flush=True)
                            runs.append(run_stompload(t, sl_args, max(args.duration, 8)))
                        second[name][tname] = median_runs(runs)
                        print(f"ci/bench:   {second[name][tname]}", flush=True)
                finally:
                    t.stop()

    if "mqbroker" in args.only:
        t = MqBroker(config="function route(msg) end\n", label="mqbroker + route()")
        t.start()
        runs = [run_workload(t, ROUTE_WORKLOAD[1], args.duration, i) for i in range(args.runs)]
        t.stop()
        plain = per_workload[WORKLOADS[0][0]].get("mqbroker", {})
        routed = median_runs(runs)
        results.append((ROUTE_WORKLOAD[0], {"mqbroker + route()": routed}))
        if plain.get("msgs_per_s") and routed.get("msgs_per_s"):
            extras.append(("throughput kept with a trivial Lua route()",
                           f"{routed['msgs_per_s'] / plain['msgs_per_s'] * 100:.0f}%"))
        print("ci/bench: mqbroker: backlog of 1,000,000 messages", flush=True)
        t = MqBroker()
        t.start()
        per = backlog(t)
        t.stop()
        extras.append(("queued 100-byte message (1,000,000 held)", f"{per:.0f} bytes each, {per - 100:.0f} beyond the body"))
        print("ci/bench: mqbroker: recovery of 1,000,000 persisted messages", flush=True)
        n, secs, ready = recovery()
        extras.append((f"recovery of {n:,} persisted 100-byte messages",
                       f"{secs:.2f} s (journal replay); listening after {ready:.2f} s" if secs else "failed"))
        t = MqBroker()
        t.start()
        print("ci/bench: mqbroker: 1,000 queues, 2,000 connections", flush=True)
        many = many_connections(t, args.duration)
        t.stop()
        if "error" in many:
            extras.append(("1,000 queues, 2,000 connections, 100 B", "failed: " + many["error"][:80]))
        else:
            extras.append(("1,000 queues, 2,000 connections, 100 B",
                           f"{many['msgs_per_s']:,.0f} msgs/s, {many['cpu_us']:.2f} µs of broker CPU per message; "
                           "no consumer under half the median share"))
        t = MqBroker()
        t.start()
        print("ci/bench: mqbroker: 10,000 messages of 64 KiB held", flush=True)
        per = large_in_flight(t)
        t.stop()
        extras.append(("a 64 KiB message in flight (10,000 held)", f"{per:,.0f} bytes each, {per - 65536:,.0f} beyond the body"))
        t = MqBroker()
        t.start()
        print("ci/bench: mqbroker: selectors", flush=True)
        plain, sel = selectors_ratio(t, args.duration, args.runs)
        t.stop()
        if plain:
            extras.append(("10 consumers with selectors of three comparisons (100 B, 10 producers)",
                           f"{sel:,.0f} msgs/s against {plain:,.0f} without selectors: {sel / plain * 100:.0f}%"))
        ms, rss = startup()
        extras.append(("start-up to listening (connection file written)", f"{ms:.1f} ms"))
        extras.append(("idle RSS", f"{rss / 1048576:.1f} MiB"))
    write_report(args, results, peers, extras, started, second)


if __name__ == "__main__":
    sys.exit(main())
