"""mqbroker --hash-password through the real program: the password from
standard input or from a terminal (a pseudo-terminal here) asked twice
without echo, and a hash that Python's own PBKDF2 agrees with."""
import base64
import hashlib
import os
import pty
import re
import signal
import subprocess
import termios
import time

from mqtest import MQBROKER

HASH = re.compile(r"^\$pbkdf2-sha512\$i=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")


def b64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


def check_hash(line, password, iterations=None):
    """The hash is of password, by an implementation that is not ours."""
    m = HASH.match(line)
    assert m, f"not a hash: {line!r}"
    i, salt, dk = int(m.group(1)), b64(m.group(2)), b64(m.group(3))
    if iterations is not None:
        assert i == iterations
    assert len(salt) == 16 and len(dk) == 64
    assert hashlib.pbkdf2_hmac("sha512", password.encode(), salt, i) == dk


def hash_stdin(data, *args):
    return subprocess.run([MQBROKER, "--hash-password", *args], input=data, capture_output=True, timeout=60)


def test_hash_from_stdin_is_pbkdf2_sha512_at_210000():
    p = hash_stdin(b"s3cret\n")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1
    check_hash(lines[0], "s3cret", 210000)


def test_stdin_without_newline_and_utf8():
    p = hash_stdin("pässwörd with spaces".encode(), "--iterations", "1000")
    assert p.returncode == 0, p.stderr
    check_hash(p.stdout.decode().strip(), "pässwörd with spaces", 1000)


def test_two_hashes_of_one_password_differ():
    a = hash_stdin(b"same\n", "--iterations", "1000").stdout
    b = hash_stdin(b"same\n", "--iterations", "1000").stdout
    assert a != b  # random salts


def test_bad_stdin_is_a_clear_error():
    cases = [
        (b"", "no password: standard input is empty"),
        (b"\n", "the password is empty"),
        (b"one\ntwo\n", "more than one line"),
        (b"a\0b\n", "contains a NUL byte"),
        (b"x" * 2000 + b"\n", "longer than 1024 bytes"),
    ]
    for data, want in cases:
        p = hash_stdin(data, "--iterations", "1000")
        assert p.returncode == 1, (data[:20], p.stderr)
        assert p.stdout == b"", data[:20]
        assert want in p.stderr.decode(), (data[:20], p.stderr)


def test_bad_options_are_named():
    p = hash_stdin(b"pw\n", "--iterations", "10")
    assert p.returncode == 2
    assert "--iterations: expected a number 1000..10000000, got '10'" in p.stderr.decode()
    p = hash_stdin(b"pw\n", "-f", "broker.lua")
    assert p.returncode == 2
    assert "takes no other option than --iterations N, got '-f'" in p.stderr.decode()
    assert p.stdout == b""


def test_help_mentions_hash_password():
    out = subprocess.run([MQBROKER, "--help"], capture_output=True, text=True).stdout
    assert "--hash-password" in out


class Terminal:
    """mqbroker --hash-password on a pseudo-terminal of its own."""

    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(MQBROKER, [MQBROKER, "--hash-password", *args])
        self.out = b""

    def read_until(self, text, timeout=30):
        end = time.time() + timeout
        while text not in self.out:
            assert time.time() < end, f"no {text!r} in {self.out!r}"
            self.out += os.read(self.fd, 1024)

    def echo_on(self):
        return bool(termios.tcgetattr(self.fd)[3] & termios.ECHO)

    def type(self, text):
        os.write(self.fd, text)

    def finish(self):
        """Reads to the end; the exit status (or -signal)."""
        while True:
            try:
                d = os.read(self.fd, 1024)
            except OSError:  # EIO once the child's side is closed
                break
            if not d:
                break
            self.out += d
        _, st = os.waitpid(self.pid, 0)
        return -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)

    def close(self):
        os.close(self.fd)


def test_terminal_asks_twice_without_echo():
    t = Terminal("--iterations", "1000")
    try:
        t.read_until(b"Password: ")
        assert not t.echo_on()
        t.type(b"tty-secret\n")
        t.read_until(b"Again: ")
        assert not t.echo_on()
        t.type(b"tty-secret\n")
        assert t.finish() == 0, t.out
        assert b"tty-secret" not in t.out  # never echoed
        lines = [ln for ln in t.out.decode().splitlines() if ln.startswith("$")]
        assert len(lines) == 1, t.out
        check_hash(lines[0], "tty-secret", 1000)
        assert t.echo_on()
    finally:
        t.close()


def test_terminal_mismatch_prints_nothing():
    t = Terminal("--iterations", "1000")
    try:
        t.read_until(b"Password: ")
        t.type(b"first\n")
        t.read_until(b"Again: ")
        t.type(b"second\n")
        assert t.finish() == 1
        assert b"the two passwords differ; nothing was printed" in t.out
        assert b"$pbkdf2" not in t.out
        assert t.echo_on()
    finally:
        t.close()


def test_terminal_empty_password_refused():
    t = Terminal()
    try:
        t.read_until(b"Password: ")
        t.type(b"\n")
        t.read_until(b"Again: ")
        t.type(b"\n")
        assert t.finish() == 1
        assert b"the password is empty" in t.out
    finally:
        t.close()


def test_ctrl_c_at_the_prompt_restores_echo():
    """Interrupted without echo, the terminal gets its echo back (a
    SIGKILL, which nothing can catch, would leave it off)."""
    t = Terminal()
    try:
        t.read_until(b"Password: ")
        assert not t.echo_on()
        t.type(b"\x03")  # the line discipline sends SIGINT
        assert t.finish() == -signal.SIGINT
        assert t.echo_on()
    finally:
        t.close()
