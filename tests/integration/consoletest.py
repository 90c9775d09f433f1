"""consoletest: the broker's web console, spoken to as a browser does.

Console     an HTTP client of the console's API (/console/api/...): it
            keeps the session cookie, sends the Origin a page of the
            broker would send and, once logged in, the CSRF token; each
            of those can be left out or changed to test the rules.
Stream      the Server-Sent Events stream, read event by event.
Driver      headless Chromium (Debian's /usr/bin/chromium) driven by
            playwright-core (tests/console/driver.js): run() executes the
            body of an async function of (page, context) in Node.

USERS is a configuration with an admin and a plain user.
"""
import http.client
import json
import os
import socket

from mqtest import ROOT
from wstest import _Lines

CONSOLE_DIR = os.path.join(ROOT, "tests", "console")

USERS = ('users = { { login = "admin", passcode = "secret", admin = true },'
         ' { login = "viewer", passcode = "look" } }\n')


class Console:
    """One browser's worth of state: a cookie jar of one cookie, and a token."""

    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port
        self.origin = f"http://{host}:{port}"
        self.cookie = None
        self.token = None
        self.set_cookie = None  # the last Set-Cookie header seen

    def request(self, method, path, body=None, headers=None, origin=True, token=True, cookie=True, raw=None):
        """(status, parsed JSON or text, headers). body is JSON-encoded unless raw bytes are given."""
        h = {"Host": f"{self.host}:{self.port}"}
        if origin is True:
            h["Origin"] = self.origin
        elif origin:
            h["Origin"] = origin
        if cookie and self.cookie:
            h["Cookie"] = f"mq_console={self.cookie}"
        if token is True and self.token:
            h["X-CSRF-Token"] = self.token
        elif token and token is not True:
            h["X-CSRF-Token"] = token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
            hdrs = dict(r.getheaders())
            status = r.status
        finally:
            c.close()
        if "Set-Cookie" in hdrs:
            self.set_cookie = hdrs["Set-Cookie"]
            value = hdrs["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
            self.cookie = value or None
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return status, parsed, hdrs

    def login(self, login="admin", password="secret", **kw):
        status, reply, hdrs = self.request("POST", "/console/api/login", {"login": login, "password": password}, **kw)
        if status == 200:
            self.token = reply["data"]["token"]
        return status, reply

    def command(self, *args, **kw):
        status, reply, _ = self.request("POST", "/console/api/command", {"args": list(args)}, **kw)
        return status, reply

    def ok(self, *args):
        status, reply = self.command(*args)
        assert status == 200 and reply["ok"], reply
        return reply.get("data")

    def stream(self):
        return Stream(self)


class Stream:
    """GET /console/api/stream, read one event at a time."""

    def __init__(self, console, timeout=10):
        self.sock = socket.create_connection((console.host, console.port), timeout=timeout)
        head = f"GET /console/api/stream HTTP/1.1\r\nHost: {console.host}:{console.port}\r\n"
        if console.cookie:
            head += f"Cookie: mq_console={console.cookie}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.f = self.sock.makefile("rb")
        self.status_line = self.f.readline().decode().strip()
        self.headers = {}
        while True:
            line = self.f.readline().decode().strip()
            if not line:
                break
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.status = int(self.status_line.split()[1])
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.buf = b""

    def _more(self):
        if not self.chunked:
            data = self.f.read1(65536)
        else:
            size = int(self.f.readline().strip() or b"0", 16)
            if size == 0:
                raise EOFError("the stream ended")
            data = self.f.read(size)
            self.f.readline()
        if not data:
            raise EOFError("the stream ended")
        self.buf += data

    def event(self):
        """(name, data parsed as JSON) of the next event."""
        while b"\n\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\n\n", 1)
        name, data = "message", []
        for line in raw.decode().split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if not data:
            return self.event()  # a retry: line alone
        return name, json.loads("\n".join(data))

    def until(self, name):
        while True:
            n, data = self.event()
            if n == name:
                return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Driver:
    """Headless Chromium under playwright-core; run() returns what the code returns."""

    def __init__(self, timeout=60.0):
        self.pipe = _Lines(["node", os.path.join(CONSOLE_DIR, "driver.js")])
        ev = self.pipe.next(timeout)
        if not ev.get("ready"):
            self.pipe.stop()
            raise AssertionError(f"the browser did not start: {ev}")

    def run(self, code, timeout=40.0):
        self.pipe.write({"code": code})
        ev = self.pipe.next(timeout)
        if "error" in ev:
            raise AssertionError(f"in the browser: {ev['error']}\nwhile running: {code}")
        return ev["result"]

    def stop(self):
        self.pipe.stop()
