"""The Debian packages, installed as an operator installs them.

ci/package builds mqbroker and mqsh (lintian must report no error); dpkg
installs them on this machine; the installed broker runs as its system user
the way mqbroker.service runs it (systemd need not be running: the unit's
settings are applied by hand, and the readiness message arrives on a
notify socket of the test's own); the installed mqsh talks to it through
/run/mqbroker as an operator in the group mqbroker-admin; stomp.py sends and
receives; an upgrade keeps a changed /etc/mqbroker/broker.lua and the
journal; removal and purge take everything away. Afterwards the machine is
as it was: packages purged, the system user and groups removed.

Needs root, and a machine where mqbroker is not installed; skipped
otherwise, with the reason.
"""
import grp
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest
import stomp

from mqtest import ROOT, free_port, wait_for

UNIT = "/lib/systemd/system/mqbroker.service"
CONF = "/etc/mqbroker/broker.lua"
RUN_DIR = "/run/mqbroker"
SOCKET = RUN_DIR + "/mqbroker.sock"
POLICY_RC_D = "/usr/sbin/policy-rc.d"
USER, GROUP, ADMIN_GROUP = "mqbroker", "mqbroker", "mqbroker-admin"


def _exists(getter, name):
    try:
        getter(name)
        return True
    except KeyError:
        return False


def _why_not():
    """The reason this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "needs root to install packages and create the system user (CI runs as root)"
    for p in ("mqbroker", "mqsh"):
        st = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout
        if st and "not-installed" not in st:
            return f"the package {p} is on this machine ({st.strip()}): the test would not leave it as it was"
    if _exists(pwd.getpwnam, USER) or _exists(grp.getgrnam, GROUP) or _exists(grp.getgrnam, ADMIN_GROUP):
        return "a user or group named mqbroker or mqbroker-admin exists here: the test would not leave it as it was"
    for path in (RUN_DIR, "/etc/mqbroker", "/var/lib/mqbroker"):
        if os.path.exists(path):
            return f"{path} exists here: the test would not leave it as it was"
    if os.path.isdir("/run/systemd/system") and os.path.exists(POLICY_RC_D):
        return f"systemd runs here and {POLICY_RC_D} exists: cannot keep dpkg from starting the service"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def run(*cmd, check=True, timeout=120, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def unit_service(path):
    """The [Service] settings of a unit file: name -> value (the last one given)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "Service":
                k, _, v = line.partition("=")
                out[k] = v
    return out


class Service:
    """The installed broker started as mqbroker.service starts it: the
    unit's user, groups, open-file limit, umask, runtime directory and
    ExecStart, with stderr as the journal stream and a notify socket.
    Only the listening address and port are added, for a free loopback one."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.svc = None
        self.stderr_path = os.path.join(tmp, "journal")
        self.proc = None

    def start(self):
        svc = self.svc = unit_service(UNIT)  # the installed one, read again after an upgrade
        user = pwd.getpwnam(svc["User"])
        # RuntimeDirectory=: systemd makes /run/NAME for the service's user.
        run_dir = "/run/" + svc["RuntimeDirectory"]
        os.makedirs(run_dir, exist_ok=True)
        os.chown(run_dir, user.pw_uid, grp.getgrnam(svc["Group"]).gr_gid)
        os.chmod(run_dir, int(svc["RuntimeDirectoryMode"], 8))
        notify_path = os.path.join(self.tmp, "notify")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        os.chmod(notify_path, 0o666)  # the broker's user sends to it
        notify.settimeout(20)
        err = open(self.stderr_path, "ab")
        st = os.fstat(err.fileno())
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name,
               "NOTIFY_SOCKET": notify_path, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        nofile = int(svc["LimitNOFILE"])
        umask = int(svc["UMask"], 8)

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            os.umask(umask)

        cmd = ["setpriv", f"--reuid={svc['User']}", f"--regid={svc['Group']}",
               f"--groups={','.join(svc['SupplementaryGroups'].split())}", "--no-new-privs", "--"]
        cmd += shlex.split(svc["ExecStart"]) + ["-i", "127.0.0.1", "-p", str(self.port), "-l", "3"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                     cwd="/", preexec_fn=limits)
        err.close()
        try:
            msg = notify.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no READY=1 on the notify socket in 20 s; log:\n{self.log()}")
        finally:
            notify.close()
        assert msg == b"READY=1", msg
        # Ready means listening: a client connects at once.
        socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        return self

    def log(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        self.proc = None
        assert rc == 0, f"the broker exited with {rc}; log:\n{self.log()}"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def mqsh(*args, operator=True, check=True):
    """The installed mqsh, as an unprivileged operator: nobody, in the
    group mqbroker-admin (or in no group, with operator=False). No -S: it
    finds the system service's socket by itself."""
    groups = ADMIN_GROUP if operator else "-"
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup",
           f"--groups={groups}" if operator else "--clear-groups", "--", "/usr/bin/mqsh"] + list(args)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return run(*cmd, check=check, env=env, cwd="/", timeout=30)


def stomp_client(port):
    c = stomp.Connection([("127.0.0.1", port)])
    c.connect(wait=True)
    return c


def receive_one(port, dest):
    got = []

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            got.append(frame.body)

    c = stomp_client(port)
    c.set_listener("", L())
    c.subscribe(dest, id="1", ack="auto")
    wait_for(lambda: got, timeout=10, what=f"a message from {dest}")
    c.disconnect()
    return got[0]


def repack(deb, version, out_dir):
    """The same package under a higher version: an upgrade for dpkg."""
    d = os.path.join(out_dir, "repack")
    shutil.rmtree(d, ignore_errors=True)
    run("dpkg-deb", "-R", deb, d)
    ctl = os.path.join(d, "DEBIAN", "control")
    with open(ctl) as f:
        text = re.sub(r"^Version: .*$", f"Version: {version}", f.read(), flags=re.M)
    with open(ctl, "w") as f:
        f.write(text)
    new = os.path.join(out_dir, f"mqbroker_{version}.deb")
    run("dpkg-deb", "-b", d, new)
    return new


def dpkg_status(pkg):
    return run("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, check=False).stdout.strip()


@pytest.fixture(scope="module")
def debs():
    out = tempfile.mkdtemp(prefix="mqbroker-debs-")
    try:
        p = run(os.path.join(ROOT, "ci", "package"), out, timeout=900)
        found = {f.split("_")[0]: os.path.join(out, f) for f in os.listdir(out) if f.endswith(".deb")}
        assert {"mqbroker", "mqsh"} <= set(found), (found, p.stderr)
        yield found
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_packages_hold_what_they_ship(debs):
    """lintian is clean (ci/package fails otherwise); the daemon is in sbin,
    the configuration is a conffile, the unit and manual pages are there."""
    files = run("dpkg-deb", "-c", debs["mqbroker"]).stdout
    for path in ("./usr/sbin/mqbroker", "./etc/mqbroker/broker.lua", "./lib/systemd/system/mqbroker.service",
                 "./usr/share/man/man8/mqbroker.8.gz", "./usr/share/man/man5/mqbroker.lua.5.gz",
                 "./usr/share/mqbroker/lua/broker.lua", "./usr/share/mqbroker/lua/examples/authorize.lua",
                 "./var/lib/mqbroker/"):
        assert re.search(r" %s( |$)" % re.escape(path), files, re.M), f"{path} not in the mqbroker package"
    ctl = tempfile.mkdtemp()
    try:
        run("dpkg-deb", "-e", debs["mqbroker"], ctl)
        with open(os.path.join(ctl, "conffiles")) as f:
            assert f.read().split() == [CONF]
    finally:
        shutil.rmtree(ctl)
    files = run("dpkg-deb", "-c", debs["mqsh"]).stdout
    assert " ./usr/bin/mqsh" in files and " ./usr/share/man/man1/mqsh.1.gz" in files


def test_install_run_upgrade_remove(debs):
    tmp = tempfile.mkdtemp(prefix="mqbroker-pkgtest-")
    os.chmod(tmp, 0o755)  # the broker's user reaches the notify socket in it
    made_policy = False
    service = None
    try:
        service = Service(tmp)
        if os.path.isdir("/run/systemd/system"):
            # systemd runs here: dpkg would start the real service on port
            # 61613. policy-rc.d is Debian's way to say "not now".
            with open(POLICY_RC_D, "w") as f:
                f.write("#!/bin/sh\n# mqbroker's tests/integration/test_package.py, while it runs\nexit 101\n")
            os.chmod(POLICY_RC_D, 0o755)
            made_policy = True

        # -- install
        run("dpkg", "-i", debs["mqbroker"], debs["mqsh"], stdin=subprocess.DEVNULL, timeout=300)
        user = pwd.getpwnam(USER)
        assert user.pw_uid < 1000 and user.pw_dir == "/var/lib/mqbroker", user
        assert grp.getgrgid(user.pw_gid).gr_name == GROUP
        admin_gid = grp.getgrnam(ADMIN_GROUP).gr_gid
        st = os.stat("/var/lib/mqbroker")
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o750)
        st = os.stat(CONF)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, user.pw_gid, 0o640)
        for page in ("man8/mqbroker.8.gz", "man5/mqbroker.lua.5.gz", "man1/mqsh.1.gz"):
            assert os.path.exists("/usr/share/man/" + page), page
        if shutil.which("systemd-analyze"):
            args = ["systemd-analyze", "verify"] + ([] if shutil.which("man") else ["--man=no"]) + [UNIT]
            p = run(*args, check=False)
            assert p.returncode == 0 and "mqbroker" not in p.stdout + p.stderr, p.stdout + p.stderr

        # -- run as the unit does; an operator's mqsh and stomp.py talk to it
        service.start()
        st = os.stat(SOCKET)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, admin_gid, 0o660), st
        stats = json.loads(mqsh("-j", "stats").stdout)
        assert stats["ok"] and stats["data"]["port"] == service.port, stats
        denied = mqsh("stats", operator=False, check=False)
        assert denied.returncode == 1 and SOCKET in denied.stderr and "Permission denied" in denied.stderr, \
            denied.stderr
        assert "no log file to reopen" in mqsh("logreopen").stdout
        c = stomp_client(service.port)
        c.send("/queue/pkgtest", "kept across the upgrade", headers={"persistent": "true"}, receipt="r1")
        c.disconnect()
        show = json.loads(mqsh("-j", "show", "/queue/pkgtest").stdout)
        assert show["data"]["depth"] == 1, show
        service.stop()
        assert not os.path.exists(SOCKET)
        # journald's stream: a priority on every line, no timestamp of our own
        lines = [ln for ln in service.log().splitlines() if ln]
        assert lines and all(re.match(r"<[3-7]>(ERROR|WARN|NOTICE|INFO|DEBUG): ", ln) for ln in lines), lines
        assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:", ln) for ln in lines), lines

        # -- upgrade with a changed configuration file
        with open(CONF) as f:
            conf = f.read()
        assert "\nmax_connections = 10000\n" in conf
        with open(CONF, "w") as f:
            f.write(conf.replace("\nmax_connections = 10000\n", "\nmax_connections = 7777 -- changed here\n"))
        newer = repack(debs["mqbroker"], "0.1.0+pkgtest1", tmp)
        run("dpkg", "-i", newer, stdin=subprocess.DEVNULL, timeout=300)
        assert dpkg_status("mqbroker") == "install ok installed 0.1.0+pkgtest1"
        with open(CONF) as f:
            assert "max_connections = 7777 -- changed here" in f.read()
        assert not [n for n in os.listdir("/etc/mqbroker") if ".dpkg-" in n]
        st = os.stat(CONF)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, user.pw_gid, 0o640)
        service.start()
        cfg = json.loads(mqsh("-j", "config", "max_connections").stdout)
        assert cfg["data"]["value"] == "7777", cfg
        assert receive_one(service.port, "/queue/pkgtest") == "kept across the upgrade"
        service.stop()

        # -- remove keeps the configuration; purge takes the rest
        run("dpkg", "-r", "mqbroker", "mqsh", timeout=300)
        assert not os.path.exists("/usr/sbin/mqbroker") and not os.path.exists("/usr/bin/mqsh")
        assert os.path.exists(CONF)
        assert dpkg_status("mqbroker").startswith("deinstall ok config-files")
        run("dpkg", "-P", "mqbroker", "mqsh", timeout=300)
        assert not os.path.exists("/etc/mqbroker") and not os.path.exists("/var/lib/mqbroker")
        assert dpkg_status("mqbroker") == "" or "not-installed" in dpkg_status("mqbroker")
    finally:
        if service:
            service.kill()
        for p in ("mqbroker", "mqsh"):
            if dpkg_status(p) and "not-installed" not in dpkg_status(p):
                run("dpkg", "-P", p, check=False, timeout=300)
        # Debian keeps a purged package's system user; the test leaves none.
        if _exists(pwd.getpwnam, USER):
            run("deluser", "--system", "--quiet", USER, check=False)
        for g in (GROUP, ADMIN_GROUP):
            if _exists(grp.getgrnam, g):
                run("delgroup", "--system", "--quiet", g, check=False)
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        if made_policy:
            os.unlink(POLICY_RC_D)
        shutil.rmtree(tmp, ignore_errors=True)
    assert _why_not() is None, "the machine is not as it was: " + str(_why_not())


CLIENT_PACKAGES = ("libmqclient1", "libmqclient-dev", "python3-mqclient")
CLIENT_FILES = ("/usr/include/mqclient.h", "/usr/lib/python3/dist-packages/mqclient")


def _client_why_not():
    for p in CLIENT_PACKAGES:
        st = dpkg_status(p)
        if st and "not-installed" not in st:
            return f"the package {p} is on this machine ({st}): the test would not leave it as it was"
    for path in CLIENT_FILES:
        if os.path.exists(path):
            return f"{path} exists here: the test would not leave it as it was"
    return None


def test_client_packages_hold_what_they_ship(debs):
    """The client library's packages: the shared library alone in
    libmqclient1 (named after its soname), the header, the .so link, the
    static library and the pkg-config file in libmqclient-dev, the Python
    package in python3-mqclient, depending on the library."""
    for p in CLIENT_PACKAGES:
        assert p in debs, sorted(debs)
    files = run("dpkg-deb", "-c", debs["libmqclient1"]).stdout
    assert re.search(r"\./usr/lib/[^/]+/libmqclient\.so\.1\.0\.0$", files, re.M), files
    assert "libmqclient.so -> " not in files
    files = run("dpkg-deb", "-c", debs["libmqclient-dev"]).stdout
    for pattern in (r"\./usr/include/mqclient\.h$", r"\./usr/lib/[^/]+/libmqclient\.a$",
                    r"\./usr/lib/[^/]+/pkgconfig/mqclient\.pc$", r"libmqclient\.so -> libmqclient\.so\.1$"):
        assert re.search(pattern, files, re.M), (pattern, files)
    files = run("dpkg-deb", "-c", debs["python3-mqclient"]).stdout
    for name in ("__init__.py", "_session.py", "_libpath.py", "session_events.py"):
        assert f"./usr/lib/python3/dist-packages/mqclient/{name}" in files, files
    deps = run("dpkg-deb", "-f", debs["python3-mqclient"], "Depends").stdout
    assert "python3" in deps and "libmqclient1" in deps
    deps = run("dpkg-deb", "-f", debs["libmqclient1"], "Depends").stdout
    assert "libevent-core" in deps and "libssl3" in deps


@pytest.mark.skipif(_client_why_not() is not None, reason=str(_client_why_not()))
def test_client_packages_install_build_run_remove(debs, make_broker, tmp_path):
    """Installed with dpkg, as a developer installs them: a program builds
    against the system's copy with `pkg-config --cflags --libs mqclient` and
    exchanges messages with a broker; Debian's python3 imports mqclient
    with nothing on its path and runs the guide's producer. Purging leaves
    nothing behind."""
    b = make_broker()
    try:
        run("dpkg", "-i", *(debs[p] for p in CLIENT_PACKAGES), stdin=subprocess.DEVNULL, timeout=300)
        flags = run("pkg-config", "--cflags", "--libs", "mqclient").stdout.split()
        binary = str(tmp_path / "client_example")
        run("cc", "-o", binary, os.path.join(ROOT, "docs", "examples", "client_example.c"), *flags)
        ldd = run("ldd", binary).stdout
        assert re.search(r"libmqclient\.so\.1 => (/usr)?/lib/[^/]+/libmqclient\.so\.1 ", ldd), ldd
        out = run(binary, "127.0.0.1", str(b.port), "/queue/pkgclient", "5").stdout
        assert "done: 5 posted, 5 acknowledged, 0 failed, 5 received" in out, out
        env = {"PATH": "/usr/bin:/bin", "BMQ_BROKER_URI": f"tcp://127.0.0.1:{b.port}"}
        p = run("/usr/bin/python3", os.path.join(ROOT, "python", "examples", "producer_ack.py"), env=env)
        assert p.stdout.splitlines() == ["Post success"], p.stdout + p.stderr
    finally:
        run("dpkg", "-P", *reversed(CLIENT_PACKAGES), check=False, timeout=300)
    for path in CLIENT_FILES:
        assert not os.path.exists(path), f"{path} left behind"
    assert _client_why_not() is None
