"""wstest: real WebSocket clients for the broker's WebSocket listener.

WsRaw       a Node `ws` client (tests/ws/wspipe.js) that speaks STOMP over
            WebSocket with mqtest.Raw's frame helpers: send() is one
            WebSocket message, recv() reads frames from the payload stream.
Browser     headless Chromium (Debian's /usr/bin/chromium, driven by
            playwright-core: tests/ws/browser.js) on a test page that uses
            @stomp/stompjs; call() evaluates JavaScript in the page.
PageServer  a loopback HTTP server for the page: Chromium refuses a page
            that is not served from loopback access to a loopback broker.

The npm packages come from tests/ws/package-lock.json (ci/npm-deps).
"""
import base64
import http.server
import json
import os
import queue
import shutil
import subprocess
import threading
import time

from mqtest import ROOT, Raw

WSDIR = os.path.join(ROOT, "tests", "ws")


def require_node():
    """Fails (not skips) with the way out when the clients are missing."""
    missing = []
    if not shutil.which("node"):
        missing.append("node")
    for pkg in ("ws", "@stomp/stompjs", "playwright-core"):
        if not os.path.isdir(os.path.join(WSDIR, "node_modules", pkg)):
            missing.append(pkg)
    if missing:
        raise AssertionError(f"missing {', '.join(missing)}: run ci/npm-deps (ci/test does)")


class _Lines:
    """A child process speaking JSON lines; events land in a queue."""

    def __init__(self, argv):
        require_node()
        self.proc = subprocess.Popen(argv, cwd=WSDIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.events = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def write(self, obj):
        self.write_line(json.dumps(obj))

    def write_line(self, line):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def next(self, timeout):
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing from {self.proc.args[1]} within {timeout} s; "
                               f"stderr: {''.join(self.stderr)[-2000:]}")
        if ev is None:
            self.events.put(None)  # stays at the end
            raise EOFError(f"{self.proc.args[1]} exited; stderr: {''.join(self.stderr)[-2000:]}")
        return ev

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class WsRaw(Raw):
    """STOMP over a real WebSocket client, with Raw's frame helpers."""

    def __init__(self, url, protocols=("v12.stomp",), headers=None, timeout=5.0, binary=False, wait=True):
        self.pipe = _Lines(["node", "wspipe.js", json.dumps({"url": url, "protocols": list(protocols),
                                                             "headers": headers or {}})])
        self.buf = b""
        self.timeout = timeout
        self.version = "1.0"
        self.binary = binary
        self.protocol = None
        self.messages = []  # (payload, binary) as received
        self.closed = None  # (code, reason) once closed
        self.pongs = 0
        if wait:
            self.wait_open()

    def wait_open(self, timeout=10.0):
        ev = self.pipe.next(timeout)
        if "open" not in ev:
            raise AssertionError(f"WebSocket did not open: {ev}")
        self.protocol = ev["open"]
        return self.protocol

    def outcome(self, timeout=10.0):
        """The first event: {"open": ...}, {"unexpected": status, "body": ...} or {"error": ...}."""
        return self.pipe.next(timeout)

    def send(self, data, binary=None):
        if isinstance(data, str):
            data = data.encode()
        self.pipe.write({"send": base64.b64encode(data).decode(), "binary": self.binary if binary is None else binary})

    def send_messages(self, parts, binary=None):
        for p in parts:
            self.send(p, binary)

    def ping(self):
        self.pipe.write({"ping": ""})

    def pause(self, on=True):
        self.pipe.write({"pause": on})

    def _event(self, deadline):
        ev = self.pipe.next(max(0.01, deadline - time.time()))
        if "message" in ev:
            data = base64.b64decode(ev["message"])
            self.messages.append((data, ev["binary"]))
            return data
        if "close" in ev:
            self.closed = (ev["close"], ev["reason"])
            raise EOFError(f"WebSocket closed: {self.closed}")
        if "pong" in ev:
            self.pongs += 1
            return b""
        if "error" in ev:
            return b""
        raise AssertionError(f"unexpected event {ev}")

    def _fill(self, deadline):
        if self.closed:
            raise EOFError(f"WebSocket closed: {self.closed}")
        try:
            self.buf += self._event(deadline)
        except TimeoutError:
            import socket
            raise socket.timeout("no WebSocket message in time")

    def wait_close(self, timeout=5.0):
        """Reads (and keeps) frames until the close; returns (code, reason)."""
        deadline = time.time() + timeout
        while not self.closed:
            if time.time() > deadline:
                raise AssertionError("WebSocket still open")
            try:
                self._fill(deadline)
            except EOFError:
                break
        return self.closed

    def close(self, code=None):
        if code is not None:
            self.pipe.write({"close": code})
        self.pipe.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class PageServer:
    """tests/ws/page.html and the stompjs bundle over HTTP on 127.0.0.1."""

    def __init__(self):
        files = {"/page.html": os.path.join(WSDIR, "page.html"),
                 "/stomp.umd.min.js": os.path.join(WSDIR, "node_modules", "@stomp", "stompjs", "bundles",
                                                   "stomp.umd.min.js")}

        class Handler(_QuietHandler):
            def do_GET(self):
                path = files.get(self.path)
                if not path:
                    self.send_error(404)
                    return
                with open(path, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if path.endswith(".html") else "text/javascript")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return f"http://127.0.0.1:{self.port}/page.html"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium on the test page; call() runs JavaScript there."""

    def __init__(self, page_url, timeout=60.0):
        self.pipe = _Lines(["node", "browser.js", page_url])
        ev = self.pipe.next(timeout)
        if not ev.get("ready"):
            self.pipe.stop()
            raise AssertionError(f"the browser did not load the page: {ev}")

    def call(self, js, timeout=30.0):
        self.pipe.write_line(js.replace("\n", " "))
        ev = self.pipe.next(timeout)
        if "error" in ev:
            raise AssertionError(f"in the page: {js}: {ev['error']}")
        return ev["result"]

    def stop(self):
        self.pipe.stop()


def js(fn, *args):
    """t.fn(args...) as a JavaScript expression."""
    return f"t.{fn}({', '.join(json.dumps(a) for a in args)})"
