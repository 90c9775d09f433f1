"""mqtest: start the real mqbroker on loopback and talk to it.

Broker      the built binary on a free port with its own data directory;
            stop() checks that it exited cleanly (no sanitizer report, no leak).
Raw         a plain socket that speaks STOMP byte by byte, for bad input.
Client      a stomp.py connection with a listener that records every frame.

MQ_BUILD_DIR selects the build (default build-test). MQ_TEST_BROKER=host:port
points the tests that can use it at a broker you started yourself (under gdb).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import stomp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MQ_BUILD_DIR", os.path.join(ROOT, "build-test"))
MQBROKER = os.path.join(BUILD, "bin", "mqbroker")
MQSH = os.path.join(BUILD, "bin", "mqsh")


def wait_for(pred, timeout=5.0, interval=0.01, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """One mqbroker process. Arguments are appended to the defaults."""

    def __init__(self, *args, data_dir=None, env=None, config=None, port=0):
        self.tmp = tempfile.mkdtemp(prefix="mqtest-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.conn_file = os.path.join(self.tmp, "conn.json")
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.args = list(args)
        self.env = env
        self.config = config
        self.port = None
        self.req_port = port
        # TLS (when a test turns it on) on a free port too, not on 61614
        self.tls_port = free_port()
        self.proc = None
        self.info = {}

    def command(self):
        cmd = [MQBROKER, "-i", "127.0.0.1", "-p", str(self.req_port), "-l", "3",
               "--data-dir", self.data_dir, "-c", self.conn_file, "-o", f"tls_port={self.tls_port}"]
        if self.config:
            path = os.path.join(self.tmp, "broker.lua")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["-f", path]
        return cmd + self.args

    def start(self, wait=True):
        if os.path.exists(self.conn_file):
            os.unlink(self.conn_file)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_for(lambda: os.path.exists(self.conn_file) or self.proc.poll() is not None,
                     timeout=20, what="the broker's connection file")
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                self.log.close()
                raise AssertionError(f"broker exited with {rc}:\n{self.read_log()}")
            with open(self.conn_file) as f:
                self.info = json.load(f)
            self.port = self.info["port"]
            # the next start reuses the port, so that clients can reconnect
            self.req_port = self.port
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15, check=True):
        """SIGTERM, wait, and insist on a clean exit (sanitizers report via the exit status)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.log.close()
        proc, self.proc = self.proc, None
        if check and rc != 0:
            raise AssertionError(f"broker exited with {rc}, log:\n{self.read_log()[-20000:]}")
        return rc

    def kill(self):
        """kill -9: a crash, as far as the broker can tell."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        if self.proc:
            self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def address(self):
        return ("127.0.0.1", self.port)


class Raw:
    """A raw STOMP socket: send bytes, read frames."""

    def __init__(self, broker_or_addr, timeout=5.0):
        addr = broker_or_addr.address() if isinstance(broker_or_addr, Broker) else broker_or_addr
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""
        self.timeout = timeout
        self.version = "1.0"  # header decoding in recv(); set by connect()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def frame(self, command, headers=None, body=b"", content_length=False):
        out = command + "\n"
        for k, v in (headers or {}).items():
            out += f"{k}:{v}\n"
        if isinstance(body, str):
            body = body.encode()
        if content_length:
            out += f"content-length:{len(body)}\n"
        self.send(out.encode() + b"\n" + body + b"\0")

    def connect(self, version="1.2", **headers):
        h = {"accept-version": version, "host": "/"}
        h.update(headers)
        self.frame("CONNECT", h)
        f = self.recv()
        assert f["command"] == "CONNECTED", f
        self.version = f["headers"].get("version", "1.0")
        return f

    def _decode(self, v):
        if self.version == "1.0":
            return v
        out, i = [], 0
        while i < len(v):
            if v[i] == "\\" and i + 1 < len(v):
                out.append({"n": "\n", "c": ":", "\\": "\\", "r": "\r"}.get(v[i + 1], v[i:i + 2]))
                i += 2
            else:
                out.append(v[i])
                i += 1
        return "".join(out)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def recv(self, timeout=None):
        """Next frame as a dict: command, headers (first wins), body. Skips heart-beats."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            while self.buf[:1] in (b"\n", b"\r"):
                if self.buf.startswith(b"\r\n"):
                    self.buf = self.buf[2:]
                elif self.buf.startswith(b"\n"):
                    self.buf = self.buf[1:]
                else:
                    break
            end = self.buf.find(b"\n\n")
            if end >= 0:
                head = self.buf[:end].decode()
                lines = head.split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if lines[0] != "CONNECTED":
                        k, v = self._decode(k), self._decode(v)
                    headers.setdefault(k, v)
                start = end + 2
                if "content-length" in headers:
                    n = int(headers["content-length"])
                    if len(self.buf) >= start + n + 1:
                        body = self.buf[start:start + n]
                        self.buf = self.buf[start + n + 1:]
                        return {"command": lines[0], "headers": headers, "body": body}
                else:
                    nul = self.buf.find(b"\0", start)
                    if nul >= 0:
                        body = self.buf[start:nul]
                        self.buf = self.buf[nul + 1:]
                        return {"command": lines[0], "headers": headers, "body": body}
            if time.time() > deadline:
                raise TimeoutError(f"no complete frame within the timeout; have {self.buf[:200]!r}")
            self._fill(deadline)

    def recv_raw_headers(self, timeout=None):
        """The next frame's header block exactly as sent (for escaping tests)."""
        deadline = time.time() + (timeout or self.timeout)
        while b"\n\n" not in self.buf.lstrip(b"\n"):
            self._fill(deadline)
        self.buf = self.buf.lstrip(b"\n")
        end = self.buf.find(b"\n\n")
        head = self.buf[:end]
        # consume the frame too
        self.recv(timeout)
        return head

    def expect_error(self, substring=None, timeout=None):
        f = self.recv(timeout)
        assert f["command"] == "ERROR", f
        if substring:
            assert substring in f["headers"].get("message", ""), f
        return f

    def expect_closed(self, timeout=5.0):
        deadline = time.time() + timeout
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            raise AssertionError("connection still open")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class MessageCounter(threading.Thread):
    """A subscriber that counts MESSAGE frames by their NUL (the bodies
    must hold none). It reads as fast as it can or, slow, 16 KiB every
    10 ms (about 1.6 MB/s) through a small receive buffer until
    go_fast()."""

    def __init__(self, broker, dest, slow=False):
        super().__init__(daemon=True)
        self.raw = Raw(broker, timeout=30)
        if slow:
            self.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.raw.connect()
        self.raw.frame("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "sub"})
        assert self.raw.recv()["command"] == "RECEIPT"
        self.count = 0
        self.slow = slow
        self.stop = False
        self.start()

    def go_fast(self):
        self.slow = False

    def run(self):
        s = self.raw.sock
        s.settimeout(0.2)
        while not self.stop:
            try:
                chunk = s.recv(16384 if self.slow else 1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.count += chunk.count(b"\0")
            if self.slow:
                time.sleep(0.01)

    def close(self):
        self.stop = True
        self.join(5)
        self.raw.close()


class Control:
    """The broker's control socket, spoken directly (mqsh's wire format)."""

    def __init__(self, broker_or_path, timeout=5.0):
        path = broker_or_path.info["control_socket"] if isinstance(broker_or_path, Broker) else broker_or_path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")

    def call(self, line):
        """Runs one command; returns the parsed reply {status, ok, message, data}."""
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        head = self.f.readline()
        if not head:
            raise EOFError("control socket closed")
        status, length = head.split()
        body = self.f.read(int(length))
        assert self.f.read(1) == b"\n"
        reply = json.loads(body)
        assert reply["status"] == int(status)
        return reply

    def ok(self, line):
        r = self.call(line)
        assert r["ok"], r
        return r.get("data")

    def event(self):
        return json.loads(self.f.readline())

    def close(self):
        self.sock.close()


class Recorder(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.errors = []
        self.receipts = []
        self.disconnected = threading.Event()
        self.cond = threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_disconnected(self):
        self.disconnected.set()

    def wait_messages(self, n, timeout=5.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.messages) >= n, timeout)
        assert ok, f"expected {n} messages, got {len(self.messages)}"
        return self.messages

    def wait_receipt(self, rid, timeout=5.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: rid in self.receipts, timeout)
        assert ok, f"no RECEIPT {rid} (have {self.receipts}, errors {[e.headers for e in self.errors]})"

    def wait_error(self, timeout=5.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: self.errors, timeout)
        assert ok, "no ERROR frame"
        return self.errors[0]

    def bodies(self):
        return [m.body for m in self.messages]


def client(broker, version="1.2", login="guest", passcode="guest", heartbeats=(0, 0), vhost=None,
           headers=None, wait=True):
    """A connected stomp.py client and its Recorder."""
    addr = broker.address() if isinstance(broker, Broker) else broker
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
    kw = {"heartbeats": heartbeats} if version != "1.0" else {}
    if vhost is not None and version != "1.0":
        kw["vhost"] = vhost
    conn = cls([addr], **kw)
    rec = Recorder()
    conn.set_listener("rec", rec)
    conn.connect(login, passcode, wait=wait, headers=headers or {})
    return conn, rec


class RemotePeer:
    """A genuinely remote peer: a network namespace joined to this host by a
    veth pair. The broker listens on the host's end (host_ip, not loopback
    and reachable only from the namespace); run() runs a command inside the
    namespace, where the peer's address is peer_ip. Needs root and iproute2:
    RemotePeer.skip_reason() says why not when it cannot be made."""

    _n = 0

    def __init__(self):
        RemotePeer._n += 1
        tag = f"{os.getpid() % 10000}{RemotePeer._n}"
        self.ns = f"mqt{tag}"
        self.host_if, self.ns_if = f"mqh{tag}", f"mqn{tag}"
        octet = 1 + (os.getpid() + RemotePeer._n * 7) % 250
        self.host_ip, self.peer_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
        sh = lambda *a: subprocess.run(a, check=True, capture_output=True)
        try:
            sh("ip", "netns", "add", self.ns)
            sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            sh("ip", "link", "set", self.ns_if, "netns", self.ns)
            sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
            sh("ip", "netns", "exec", self.ns, "ip", "addr", "add", f"{self.peer_ip}/30", "dev", self.ns_if)
            sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up")
            sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    @staticmethod
    def skip_reason():
        if os.geteuid() != 0:
            return "a network namespace needs root"
        if not shutil.which("ip"):
            return "iproute2's ip is not installed"
        return None

    def run(self, *cmd, timeout=30, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              timeout=timeout, **kw)

    def python(self, code, timeout=30):
        """Runs Python code (Debian's python3, with stomp.py) as the remote peer."""
        return self.run("/usr/bin/python3", "-c", code, timeout=timeout)

    def close(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def broker_factory():
    """The body of the make_broker fixture (tests/integration and
    tests/python): make(*args, start=True, **kw) -> a Broker, started
    unless start=False. Every broker made is stopped at the end and must
    have exited cleanly."""
    import pytest
    made = []

    def make(*args, start=True, **kw):
        b = Broker(*args, **kw)
        made.append(b)
        return b.start() if start else b

    yield make
    errors = []
    for b in made:
        try:
            if b.proc:
                b.stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            b.cleanup()
    if errors:
        pytest.fail("\n".join(errors))

