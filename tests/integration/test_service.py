"""Running under a service manager: systemd's readiness message, log lines
for the journal, a control socket that a group may use, and reopening the
log file for logrotate without a reload. (tests/integration/test_package.py
runs the packaged service itself.)"""
import grp
import json
import os
import platform
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest

from mqtest import ROOT, Control, Raw, wait_for

UNIT = os.path.join(ROOT, "debian", "mqbroker.service")


def journal_broker(make_broker, *args):
    """A broker whose stderr is the stream JOURNAL_STREAM names, as systemd
    starts a service."""
    b = make_broker(*args, start=False)
    open(b.log_path, "ab").close()
    st = os.stat(b.log_path)
    b.env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    return b.start()


def test_journal_lines_carry_a_priority_and_no_timestamp(make_broker, tmp_path):
    config = tmp_path / "broker.lua"
    config.write_text("max_frame = '1MiB'\n")
    b = journal_broker(make_broker, "-f", str(config))
    config.write_text("max_frame = \n")  # the reload SIGHUP asks for fails: an error line
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "<3>ERROR: reload failed" in b.read_log(), what="the reload's error line")
    b.stop()
    lines = [ln for ln in b.read_log().splitlines() if ln]
    assert any(ln.startswith("<6>INFO: listening for STOMP on 127.0.0.1:") for ln in lines), lines
    for ln in lines:
        assert ln[:3] in ("<3>", "<4>", "<5>", "<6>", "<7>"), ln
        assert ln[3:].split(":")[0] in ("ERROR", "WARN", "NOTICE", "INFO", "DEBUG"), ln


def test_timestamps_stay_when_stderr_is_not_the_journal(make_broker, tmp_path):
    """JOURNAL_STREAM inherited from a shell started under systemd, or -g
    pointing stderr at a file: the lines keep their own timestamps."""
    b = make_broker(env={"JOURNAL_STREAM": "1:2"})
    b.stop()
    assert b.read_log().startswith("20") and "mqbroker[" in b.read_log()
    logfile = tmp_path / "broker.log"
    j = journal_broker(make_broker, "-g", str(logfile))
    j.stop()
    assert logfile.read_text().startswith("20") and "<6>" not in logfile.read_text()


def test_ready_is_sent_once_listening(make_broker, tmp_path):
    """Type=notify: READY=1 arrives on NOTIFY_SOCKET once clients can
    connect and the connection file is written; an abstract socket too."""
    for name in (str(tmp_path / "notify"), "@mqbroker-test-notify-%d" % os.getpid()):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(name if name[0] == "/" else "\0" + name[1:])
        s.settimeout(20)
        b = make_broker(start=False, env={"NOTIFY_SOCKET": name})
        b.start(wait=False)
        try:
            assert s.recv(100) == b"READY=1"
        finally:
            s.close()
        with open(b.conn_file) as f:
            port = json.load(f)["port"]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        b.stop()


def test_control_socket_group_and_mode(make_broker):
    plain = make_broker()
    st = os.stat(plain.info["control_socket"])
    assert stat.S_IMODE(st.st_mode) == 0o600
    group = grp.getgrgid(os.getgid()).gr_name  # one the broker's user is in
    b = make_broker("-o", f"control_socket_group={group}")
    st = os.stat(b.info["control_socket"])
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()
    assert Control(b).ok("stats")["connections"] == 0


def test_unknown_control_socket_group_stops_start_up(make_broker):
    b = make_broker("-o", "control_socket_group=no-such-group-mqtest", start=False)
    with pytest.raises(AssertionError) as e:
        b.start()
    assert "control_socket_group: no group named 'no-such-group-mqtest'" in str(e.value)


def test_logreopen_reopens_the_file_without_reloading(make_broker, tmp_path):
    config = tmp_path / "broker.lua"
    config.write_text("max_frame = '1MiB'\n")
    logfile = tmp_path / "broker.log"
    b = make_broker("-l", "3", "-g", str(logfile), "-f", str(config))
    ctl = Control(b)
    os.rename(logfile, str(logfile) + ".1")  # what logrotate does
    config.write_text("max_frame = '2MiB'\n")
    reply = ctl.call("logreopen")
    assert reply["ok"] and reply["data"]["log_file"] == str(logfile), reply
    assert reply["message"] == f"reopened {logfile}"
    wait_for(lambda: logfile.exists() and "reopened" in logfile.read_text(), what="the new log file")
    assert ctl.ok("config max_frame")["value"] == "1048576"  # no reload happened
    r = Raw(b)
    r.connect(login="after-rotate")
    r.close()
    wait_for(lambda: "after-rotate" in logfile.read_text(), what="a line in the new file")
    assert "after-rotate" not in open(str(logfile) + ".1").read()
    plain = make_broker()
    reply = Control(plain).call("logreopen")
    assert reply["ok"] and reply["message"] == "logging goes to stderr: no log file to reopen"


# Runs a program with socket() limited to the address families given, as
# systemd's RestrictAddressFamilies= does (a seccomp filter on socket(2)
# alone; other families fail with EAFNOSUPPORT).
#   python3 -c SECCOMP_WRAPPER SYSCALL_NR AUDIT_ARCH FAMILY... -- PROGRAM ARG...
SECCOMP_WRAPPER = r"""
import ctypes, os, struct, sys
sep = sys.argv.index("--")
nr, arch, fams = int(sys.argv[1]), int(sys.argv[2]), [int(f) for f in sys.argv[3:sep]]
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
ALLOW, EAFNOSUPPORT = 0x7FFF0000, 0x00050000 | 97
n = len(fams)
# struct seccomp_data: nr at 0, arch at 4, args[0] at 16. Jumps count
# instructions from the next one; the last two return refuse and allow.
prog = [(LD_ABS, 0, 0, 4), (JEQ, 0, 4 + n, arch),  # another architecture: allow
        (LD_ABS, 0, 0, 0), (JEQ, 0, 2 + n, nr),     # not socket(): allow
        (LD_ABS, 0, 0, 16)]                          # the family
prog += [(JEQ, n - i, 0, f) for i, f in enumerate(fams)]
prog += [(RET, 0, 0, EAFNOSUPPORT), (RET, 0, 0, ALLOW)]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))
fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(code)))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
# PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0):
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[sep + 1], sys.argv[sep + 1:])
"""
# socket(2)'s number and the audit architecture, per machine
SOCKET_SYSCALL = {"x86_64": (41, 0xC000003E), "aarch64": (198, 0xC00000B7)}


def own_global_ipv4():
    """A non-loopback IPv4 address of this machine, or None."""
    if not shutil.which("ip"):
        return None
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                         text=True).stdout
    m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else None


def test_the_units_address_families_let_the_broker_know_its_own_addresses(make_broker):
    """Under mqbroker.service's RestrictAddressFamilies, a CONNECT whose
    host header is one of the machine's addresses (what stomp.py sends
    when it connects by address) still means the default virtual host:
    the broker lists its addresses with getifaddrs(), which needs
    AF_NETLINK."""
    if platform.machine() not in SOCKET_SYSCALL:
        pytest.skip(f"no socket(2) number known here for {platform.machine()}")
    addr = own_global_ipv4()
    if not addr:
        pytest.skip("this machine has no non-loopback IPv4 address to name in the host header")
    with open(UNIT) as f:
        families = re.search(r"^RestrictAddressFamilies=(.*)$", f.read(), re.M).group(1).split()
    numbers = [getattr(socket, fam) for fam in families]
    nr, arch = SOCKET_SYSCALL[platform.machine()]
    b = make_broker(start=False)
    cmd = b.command()
    wrapper = [sys.executable, "-c", SECCOMP_WRAPPER, str(nr), str(arch)] + [str(n) for n in numbers] + ["--"]
    b.command = lambda: wrapper + cmd
    b.start()
    r = Raw(b)
    r.frame("CONNECT", {"accept-version": "1.2", "host": addr})
    f = r.recv()
    assert f["command"] == "CONNECTED", (families, f)
    r.close()
