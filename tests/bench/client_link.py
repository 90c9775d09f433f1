#!/usr/bin/env python3
"""client_link.py: the client library through its installed shared library
against the same code as the installed static archive.

  /usr/bin/python3 tests/bench/client_link.py PREFIX [--count N] [--runs R]

Builds tests/bench/client_post.c out of the tree twice against the
install in PREFIX (`cmake --install build --prefix PREFIX` of the Release
build): with `pkg-config --cflags --libs mqclient` (libmqclient.so.1) and
with libmqclient.a. Starts build/bin/mqbroker (MQ_BUILD_DIR) on a free
loopback port, then runs the two programs in turn R times (default 5),
each posting N messages of 100 bytes with an acknowledgement each (default
1,000,000; window 10,000), and prints for each build the median
messages/s and the client's CPU time per message (user + system, from
the kernel's accounting of the child).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_post import start_broker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    return subprocess.run(["pkg-config", *args, "mqclient"], env=env, check=True, capture_output=True,
                          text=True).stdout.split()


def build(prefix, outdir):
    src = os.path.join(HERE, "client_post.c")
    libdir = pkg(prefix, "--variable=libdir")[0]
    shared = os.path.join(outdir, "client_post_shared")
    static = os.path.join(outdir, "client_post_static")
    subprocess.run(["cc", "-O2", "-o", shared, src, *pkg(prefix, "--cflags", "--libs"),
                    f"-Wl,-rpath,{os.path.realpath(libdir)}"], check=True)
    libs = [f for f in pkg(prefix, "--static", "--libs") if f != "-lmqclient"]
    subprocess.run(["cc", "-O2", "-o", static, src, *pkg(prefix, "--cflags"),
                    os.path.join(libdir, "libmqclient.a"), *libs], check=True)
    return {"shared": shared, "static": static}


def run(binary, port, count):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([binary, "127.0.0.1", str(port), str(count)], check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = float(out.split("msgs_per_s")[1].split()[0])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rate, cpu / count * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bins = build(os.path.abspath(args.prefix), d)
        proc, tmp, url = start_broker()
        port = int(url.rsplit(":", 1)[1])
        try:
            got = {k: [] for k in bins}
            for i in range(args.runs):
                for kind, binary in bins.items():
                    got[kind].append(run(binary, port, args.count))
                    print(f"run {i + 1} {kind}: {got[kind][-1][0]:,.0f} msgs/s, {got[kind][-1][1]:.2f} µs CPU/msg",
                          flush=True)
        finally:
            proc.terminate()
            proc.wait()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    for kind, runs in got.items():
        rates = sorted(r for r, _ in runs)
        cpus = sorted(c for _, c in runs)
        print(f"{kind}: median {rates[len(rates) // 2]:,.0f} msgs/s, {cpus[len(cpus) // 2]:.2f} µs CPU/msg "
              f"({args.count:,} x 100 B, ack each, window 10,000, {args.runs} runs)")


if __name__ == "__main__":
    main()
