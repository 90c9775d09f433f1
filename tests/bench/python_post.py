#!/usr/bin/env python3
"""python_post.py: how fast the Python package posts with on_ack.

  /usr/bin/python3 tests/bench/python_post.py [--count N] [--size B] [--broker tcp://H:P]
                                              [--not-persistent] [--no-ack] [--runs R]

Posts N messages of B bytes (default 500,000 of 100) to one queue, each
with an on_ack callback that counts it, as fast as post() returns, and
reports messages per second from the first post to the last
acknowledgement (every ack must be SUCCESS); with --no-ack, without
on_ack, until post() has returned N times. Without --broker it starts
BUILD/bin/mqbroker (MQ_BUILD_DIR, default build: the Release build) on a
free loopback port with a scratch data directory, and stops it after. The
package is the one on PYTHONPATH (e.g. build/stage/lib/python3.11/dist-packages).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_broker():
    build = os.environ.get("MQ_BUILD_DIR", os.path.join(ROOT, "build"))
    tmp = tempfile.mkdtemp(prefix="mqbench-py-")
    conn = os.path.join(tmp, "conn.json")
    proc = subprocess.Popen([os.path.join(build, "bin", "mqbroker"), "-i", "127.0.0.1", "-p", "0", "-l", "1",
                             "--data-dir", os.path.join(tmp, "data"), "-c", conn],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        if os.path.exists(conn):
            break
        time.sleep(0.01)
    time.sleep(0.05)
    with open(conn) as f:
        port = json.load(f)["port"]
    return proc, tmp, f"tcp://127.0.0.1:{port}"


def run(mqclient, broker, count, size, persistent, queue, no_ack=False):
    done = threading.Event()
    state = {"acks": 0, "bad": 0}

    def on_ack(ack):
        state["acks"] += 1
        if ack.status is not mqclient.AckStatus.SUCCESS:
            state["bad"] += 1
        if state["acks"] == count:
            done.set()

    body = b"x" * size
    with mqclient.Session(lambda e: None, broker=broker, persistent=persistent) as s:
        s.open_queue(queue, write=True)
        post = s.post
        t0 = time.perf_counter()
        if no_ack:
            for _ in range(count):
                post(queue, body)
            t1 = time.perf_counter()
            s.close_queue(queue)
            return count / (t1 - t0), count / (t1 - t0)
        for _ in range(count):
            post(queue, body, on_ack=on_ack)
        t_posted = time.perf_counter()
        if not done.wait(120):
            raise SystemExit(f"only {state['acks']} of {count} acks within 120 s")
        t1 = time.perf_counter()
        s.close_queue(queue)
    if state["bad"]:
        raise SystemExit(f"{state['bad']} acks were not SUCCESS")
    return count / (t1 - t0), count / (t_posted - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--broker")
    ap.add_argument("--not-persistent", action="store_true")
    ap.add_argument("--no-ack", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import mqclient
    proc = tmp = None
    broker = args.broker
    if not broker:
        proc, tmp, broker = start_broker()
    try:
        rates = []
        for i in range(args.runs):
            acked, posted = run(mqclient, broker, args.count, args.size, not args.not_persistent,
                                f"/queue/bench-py-{os.getpid()}-{i}", args.no_ack)
            rates.append(acked)
            print(f"run {i + 1}: {acked:,.0f} msgs/s acknowledged ({posted:,.0f} msgs/s posted)", flush=True)
        rates.sort()
        print(f"median: {rates[len(rates) // 2]:,.0f} msgs/s, {args.count:,} x {args.size} B, "
              f"{'persistent' if not args.not_persistent else 'not persistent'}, "
              f"{'no on_ack' if args.no_ack else 'on_ack each'}")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
