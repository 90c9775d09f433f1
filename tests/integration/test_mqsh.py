"""mqsh, the admin console, driven as operators and CI scripts drive it:
non-interactively (-S, -C, -c, stdin, arguments) for every admin command,
with the broker's state checked through STOMP or the control socket, and
interactively under a pseudo-terminal (tmux) for the prompt, completion,
history and Ctrl-C."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from mqtest import MQSH, ROOT, Control, client, wait_for


def clean_env(**extra):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
    env.pop("NO_COLOR", None)
    for k in ("MQ_CLIENT_CERT_KEY", "MQ_CLIENT_CA_CHAIN", "MQ_CLIENT_SERVER_NAME"):
        env.pop(k, None)
    env.update(extra)
    return env


def no_sanitizer_report(text):
    assert "Sanitizer" not in text and "runtime error" not in text, text


def mqsh(*args, stdin=None, env=None, timeout=30):
    """Runs mqsh to completion; returns the CompletedProcess (text)."""
    p = subprocess.run([MQSH, *args], input=stdin if stdin is not None else "", capture_output=True,
                       text=True, env=env or clean_env(), timeout=timeout)
    no_sanitizer_report(p.stderr)
    return p


class Sh:
    """mqsh pointed at one broker by its control socket (and STOMP port)."""

    def __init__(self, broker):
        self.broker = broker
        self.sock = broker.info["control_socket"]
        self.ctl = Control(broker)

    def run(self, *args, stdin=None, env=None):
        return mqsh("-S", self.sock, "--port", str(self.broker.port), *args, stdin=stdin, env=env)

    def ok(self, commands, *opts):
        p = self.run(*opts, "-c", commands)
        assert p.returncode == 0, f"mqsh -c {commands!r}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert p.stderr == "", p.stderr
        return p.stdout

    def json(self, command):
        """The reply to one command, through --json."""
        out = self.ok(command, "--json")
        lines = out.splitlines()
        assert len(lines) == 1, out
        return json.loads(lines[0])

    def fails(self, commands, *opts):
        p = self.run(*opts, "-c", commands)
        assert p.returncode != 0, f"mqsh -c {commands!r} succeeded:\n{p.stdout}"
        lines = p.stderr.splitlines()
        assert len(lines) == 1, f"expected one error line, got:\n{p.stderr}"
        return p.returncode, lines[0]


@pytest.fixture
def sh(broker):
    return Sh(broker)


def columns(header):
    """Start offsets of the columns of a table header (cells are 2+ blanks apart)."""
    return [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]


def assert_aligned(table_lines):
    """Every row has a cell starting exactly where each header column starts."""
    starts = columns(table_lines[0])
    assert len(starts) > 1
    for row in table_lines[1:]:
        for s in starts[1:]:
            assert row[s - 2:s] == "  " and row[s] != " ", f"row not aligned at {s}:\n" + "\n".join(table_lines)


# ---- finding the broker ----------------------------------------------------

def test_no_broker_one_line_naming_the_path(tmp_path):
    path = str(tmp_path / "none.sock")
    for args, tried in ((["-S", path], path),
                        (["--data-dir", str(tmp_path)], str(tmp_path / "mqbroker.sock"))):
        p = mqsh(*args, "-c", "stats")
        assert p.returncode == 1
        assert p.stdout == ""
        assert p.stderr == (f"mqsh: could not connect to the broker at {tried}: No such file or directory "
                            "(is it running? try -S PATH)\n")
    # a socket file nobody listens on any more (a crashed broker)
    stale = tmp_path / "stale.sock"
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    p = mqsh("-S", str(stale), "stats")
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and f"at {stale}: Connection refused" in p.stderr


def test_default_socket_is_in_the_brokers_data_dir(make_broker, tmp_path):
    # Not root: the data dir comes from XDG_STATE_HOME, as the broker's does.
    if os.geteuid() == 0:
        p = mqsh("-c", "stats", env=clean_env(XDG_STATE_HOME=str(tmp_path)))
        # As root the default is /var/lib/mqbroker, whatever the environment:
        # mqsh reaches the broker there if one runs (ci/run-broker starts one),
        # else it says it tried exactly that path.
        if p.returncode == 0:
            assert "connections" in p.stdout
        else:
            assert "/var/lib/mqbroker/mqbroker.sock" in p.stderr and p.returncode == 1
        b = make_broker()
        p = mqsh("--data-dir", b.data_dir, "-c", "stats")
        assert p.returncode == 0 and "connections" in p.stdout
    else:
        env = clean_env(XDG_STATE_HOME=str(tmp_path))
        b = make_broker(data_dir=str(tmp_path / "mqbroker"), env={"XDG_STATE_HOME": str(tmp_path)})
        p = mqsh("-c", "stats", env=env)
        assert p.returncode == 0, p.stderr


def test_connection_file_gives_socket_and_stomp_port(broker):
    p = mqsh("-C", broker.conn_file, "-c", "create queue /queue/cf; publish /queue/cf via-conn-file")
    assert p.returncode == 0, p.stderr
    c, rec = client(broker)
    c.subscribe("/queue/cf", id="1")
    assert rec.wait_messages(1)[0].body == "via-conn-file"
    c.disconnect()
    p = mqsh("-C", "/nonexistent/conn.json", "-c", "stats")
    assert p.returncode == 1
    assert p.stderr == "mqsh: cannot read connection file /nonexistent/conn.json: No such file or directory\n"


def test_command_as_arguments(sh):
    sh.ctl.ok("create queue /queue/args")
    p = sh.run("list", "queues")
    assert p.returncode == 0 and "/queue/args" in p.stdout
    p = sh.run("purge", "/queue/none")
    assert p.returncode == 1 and p.stderr == "mqsh: no destination named /queue/none\n"


# ---- every admin command ---------------------------------------------------

def test_create_list_show_checked_through_stomp(broker, sh):
    out = sh.ok("create queue /queue/made; create topic /topic/made; create pubsub /pubsub/made")
    assert out.splitlines() == ["queue /queue/made created", "topic /topic/made created",
                                "pubsub /pubsub/made created"]
    names = {(d["name"], d["type"]) for d in sh.ctl.ok("list")}
    assert {("/queue/made", "queue"), ("/topic/made", "topic"), ("/pubsub/made", "pubsub")} <= names
    # the queue holds what STOMP sends it, as show and list report
    p, rec = client(broker)
    p.send("/queue/made", "x", receipt="r")
    rec.wait_receipt("r")
    show = sh.json("show /queue/made")
    assert show["ok"] and show["data"]["depth"] == 1 and show["data"]["type"] == "queue"
    rows = sh.json("list queues")["data"]
    assert [r["name"] for r in rows] == ["/queue/made"]
    out = sh.ok("show /queue/made")
    lines = out.splitlines()
    assert lines[0] == "queue /queue/made"
    assert re.search(r"^depth +1$", out, re.M)
    assert re.search(r"^subscribers +\(none\)$", out, re.M)
    p.disconnect()


def test_table_output_is_aligned(sh):
    sh.ok("create queue /queue/a; create queue /queue/a-much-longer-name; create pubsub /pubsub/p; "
          "attach /pubsub/p /queue/a")
    out = sh.ok("list").splitlines()
    assert out[-1] == "3 destinations"
    table = out[:-1]
    assert table[0].split()[:6] == ["name", "type", "vhost", "depth", "unacked", "consumers"]
    assert len(table) == 4
    assert_aligned(table)
    assert all(line == line.rstrip() for line in out)
    # the pubsub has a column the queues do not, and they one it has not
    header = table[0].split()
    assert "children" in header and "paused" in header
    # no colours when stdout is not a terminal
    assert "\033" not in "\n".join(out)


def test_json_output_is_the_brokers_reply(broker, sh):
    sh.ctl.ok("create queue /queue/j")
    for command in ("stats", "list", "show /queue/j", "list clients", "loglevel"):
        got = sh.json(command)
        want = Control(broker).call(command)
        assert set(got) == set(want), command
        assert got["status"] == 200 and got["ok"] is True
        if command.startswith("list"):
            assert got["data"] == want["data"]
    # failures too: JSON on stdout, the one line on stderr
    p = sh.run("--json", "-c", "show /queue/nope")
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"status": 404, "ok": False, "message": "no destination named /queue/nope"}
    assert p.stderr == "mqsh: no destination named /queue/nope\n"
    p = sh.run("--json", "-c", "frobnicate")
    reply = json.loads(p.stdout)
    assert reply["status"] == 405 and not reply["ok"] and "frobnicate" in reply["message"]


def test_purge_empties_the_queue(broker, sh):
    p, rec = client(broker)
    for i in range(5):
        p.send("/queue/purge", str(i))
    p.send("/queue/purge", "5", receipt="r")
    rec.wait_receipt("r")
    assert sh.ok("purge /queue/purge") == "/queue/purge: 6 messages removed\n"
    assert sh.json("purge /queue/purge")["data"]["purged"] == 0
    c, crec = client(broker)
    c.subscribe("/queue/purge", id="1")
    time.sleep(0.2)
    assert crec.messages == []
    p.disconnect()
    c.disconnect()


def test_attach_and_detach(broker, sh):
    sh.ok("create pubsub /pubsub/jobs; attach /pubsub/jobs /queue/audit; attach /pubsub/jobs /queue/copy")
    assert sh.json("show /pubsub/jobs")["data"]["child_names"] == ["/queue/audit", "/queue/copy"]
    p, rec = client(broker)
    p.send("/pubsub/jobs", "one", receipt="1")
    rec.wait_receipt("1")
    assert sh.ok("detach /pubsub/jobs /queue/copy") == "/queue/copy detached from /pubsub/jobs\n"
    p.send("/pubsub/jobs", "two", receipt="2")
    rec.wait_receipt("2")
    got = {}
    for q in ("/queue/audit", "/queue/copy"):
        c, crec = client(broker)
        c.subscribe(q, id="1")
        time.sleep(0.2)
        got[q] = crec.bodies()
        c.disconnect()
    assert got == {"/queue/audit": ["one", "two"], "/queue/copy": ["one"]}
    code, err = sh.fails("attach /queue/audit /queue/x")
    assert code == 1 and err == "mqsh: /queue/audit is a queue, not a pubsub"
    p.disconnect()


def test_pause_and_resume(broker, sh):
    c, rec = client(broker)
    c.subscribe("/queue/pz", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    assert sh.ok("pause /queue/pz") == "/queue/pz paused\n"
    p, prec = client(broker)
    for i in range(3):
        p.send("/queue/pz", str(i))
    p.send("/queue/pz", "3", receipt="r")
    prec.wait_receipt("r")
    time.sleep(0.2)
    assert rec.messages == []
    assert re.search(r"^paused +true$", sh.ok("show /queue/pz"), re.M)
    assert sh.ok("resume /queue/pz") == "/queue/pz resumed\n"
    assert rec.wait_messages(4) and rec.bodies() == ["0", "1", "2", "3"]
    c.disconnect()
    p.disconnect()


def test_list_show_and_disconnect_clients(broker, sh):
    p, _ = client(broker, login="alice")
    for i in range(3):
        p.send("/queue/dc", str(i))
    c, rec = client(broker, login="bob")
    c.subscribe("/queue/dc", id="s1", ack="client-individual")
    rec.wait_messages(3)
    clients = sh.json("list clients")["data"]
    bob = next(x for x in clients if x["login"] == "bob")
    table = sh.ok("list clients").splitlines()
    assert table[-1] == "2 clients"
    assert_aligned(table[:-1])
    detail = sh.ok(f"show client {bob['id']}")
    assert detail.splitlines()[0] == f"client {bob['id']}"
    assert re.search(r"^subscription_list$\n^  id +destination +ack +unacked$\n^  s1 +/queue/dc +client-individual +3$",
                     detail, re.M), detail
    subs = sh.json("list subscriptions")["data"]
    assert any(s["client"] == bob["id"] and s["destination"] == "/queue/dc" for s in subs)
    assert sh.ok(f"disconnect {bob['id']} maintenance window") == f"client {bob['id']} disconnected\n"
    assert rec.wait_error().headers["message"] == "disconnected by an administrator: maintenance window"
    # its unacknowledged messages went back
    c2, rec2 = client(broker)
    c2.subscribe("/queue/dc", id="1")
    rec2.wait_messages(3)
    assert all(m.headers["redelivered"] == "true" for m in rec2.messages)
    code, err = sh.fails("disconnect 99999")
    assert err == "mqsh: no client with id 99999"
    p.disconnect()
    c2.disconnect()


def test_delete(broker, sh):
    c, rec = client(broker)
    c.subscribe("/queue/del", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    code, err = sh.fails("delete /queue/del")
    assert "has 1 subscriber" in err
    assert sh.ok("delete /queue/del force") == "/queue/del deleted\n"
    assert "deleted by an administrator" in rec.wait_error().headers["message"]
    assert sh.ctl.call("show /queue/del")["status"] == 404


def test_stats_and_loglevel(broker, sh):
    p, rec = client(broker)
    p.send("/queue/st", "x", receipt="r")
    rec.wait_receipt("r")
    out = sh.ok("stats")
    assert out.startswith("1 connection, ")
    assert re.search(r"^messages_in +1$", out, re.M) and re.search(r"^depth +1$", out, re.M)
    keys = [line.split()[0] for line in out.splitlines()[1:]]
    starts = {len(re.match(r"^\S+ +", line).group(0)) for line in out.splitlines()[1:]}
    assert len(starts) == 1, "stats values do not line up"
    assert "uptime_s" in keys and "rss_bytes" in keys
    assert sh.ok("loglevel 1") == "log level 1\n"
    assert sh.ctl.ok("loglevel")["log_level"] == 1
    code, err = sh.fails("loglevel 9")
    assert err == "mqsh: loglevel: expected 0 to 4, got '9'"
    p.disconnect()


def test_help_lists_broker_and_mqsh_commands(sh):
    out = sh.ok("help")
    names = [line.split()[0] for line in out.splitlines()[1:-1]]
    for name in ("help", "list", "show", "stats", "create", "delete", "purge", "attach", "detach", "pause",
                 "resume", "disconnect", "loglevel", "shutdown", "events", "publish", "tail", "run", "quit", "exit"):
        assert name in names
    assert_aligned(out.splitlines()[:-1])
    assert sh.ok("help purge") == "usage: purge QUEUE [vhost=V]\n  Remove every message a queue holds " \
                                  "(deliveries in flight are not touched).\n"
    assert sh.ok("help tail").startswith("usage: tail DEST [COUNT] [selector=EXPR]\n")
    assert "Ctrl-C stops it" in sh.ok("help events")
    assert sh.json("help pub")["data"]["command"] == "publish"
    code, err = sh.fails("help frobnicate")
    assert err == "mqsh: unknown command 'frobnicate' (try: help)"


def test_shutdown_stops_the_broker(make_broker):
    b = make_broker()
    sock = b.info["control_socket"]
    p = mqsh("-S", sock, "-c", "shutdown")
    assert p.returncode == 0 and p.stdout == "shutting down\n"
    assert b.proc.wait(10) == 0
    p = mqsh("-S", sock, "-c", "stats")
    assert p.returncode == 1 and f"could not connect to the broker at {sock}" in p.stderr


def test_shutdown_refused_in_persistent_mode(make_broker):
    b = make_broker("-s")
    p = mqsh("-S", b.info["control_socket"], "-c", "shutdown")
    assert p.returncode == 1
    assert p.stderr == "mqsh: shutdown refused: the broker runs as a persistent server (-s)\n"
    assert b.alive()


def test_unknown_commands_and_bad_arguments_are_one_line(sh):
    assert sh.fails("lst") == (1, "mqsh: unknown command 'lst' (try: list, help)")
    assert sh.fails("pu /queue/x") == (1, "mqsh: ambiguous command 'pu' (could be: purge, publish)")
    assert sh.fails("create shelf /x")[1] == "mqsh: create: unknown kind 'shelf' (expected queue, topic or pubsub)"
    assert sh.fails('create queue "/queue/x')[1] == "mqsh: unterminated double quote"
    sh.ctl.ok("create queue /queue/one")
    # a missing argument lists what fits there, from the broker's live names
    assert sh.fails("purge")[1] == "mqsh: purge: missing argument (usage: purge QUEUE [vhost=V]); try: /queue/one"
    assert sh.fails("tail")[1] == "mqsh: tail: missing argument (usage: tail DEST [COUNT] [selector=EXPR]); try: /queue/one"
    assert sh.fails("stats now")[1] == "mqsh: stats: too many arguments (usage: stats)"
    # an unambiguous prefix works
    assert sh.ok("sta").startswith("0 connections")


def test_survives_a_broker_restart(make_broker):
    b = make_broker()
    proc = start(["-S", b.info["control_socket"]], stdin=subprocess.PIPE, bufsize=1)
    proc.stdin.write("loglevel\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "log level 3\n"
    b.restart()
    # the old connection is dead; the next command connects again
    proc.stdin.write("loglevel 2\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "log level 2\n"
    assert Control(b).ok("loglevel")["log_level"] == 2
    rc, out, err = finish(proc)  # end of input: mqsh leaves
    assert rc == 0 and err == ""


# ---- scripts ----------------------------------------------------------------

def test_failing_command_stops_the_script(sh):
    p = sh.run("-c", "create queue /queue/s1; purge /queue/nope; create queue /queue/s2")
    assert p.returncode == 1
    assert p.stdout == "queue /queue/s1 created\n"
    assert p.stderr == "mqsh: no destination named /queue/nope\n"
    assert sh.ctl.call("show /queue/s1")["ok"]
    assert sh.ctl.call("show /queue/s2")["status"] == 404


def test_semicolons_inside_quotes_do_not_split(broker, sh):
    sh.ok("publish /queue/semi 'a; b'; publish /queue/semi \"c;d\" note=x\\;y")
    c, rec = client(broker)
    c.subscribe("/queue/semi", id="1")
    msgs = rec.wait_messages(2)
    assert [m.body for m in msgs] == ["a; b", "c;d"]
    assert msgs[1].headers["note"] == "x;y"
    c.disconnect()


def test_stdin_script_with_comments_stops_at_first_failure(sh):
    script = ("# set up\n"
              "create queue /queue/in1   # the first\n"
              "\n"
              "create queue /queue/in2; list queues\n"
              "show /queue/missing\n"
              "create queue /queue/in3\n")
    p = sh.run(stdin=script)
    assert p.returncode == 1
    assert p.stderr == "mqsh: line 5: no destination named /queue/missing\n"
    assert "mqsh " not in p.stdout and ">" not in p.stdout  # no prompt without a terminal
    assert p.stdout.splitlines()[:2] == ["queue /queue/in1 created", "queue /queue/in2 created"]
    assert p.stdout.splitlines()[-1] == "2 queues"
    assert sh.ctl.call("show /queue/in3")["status"] == 404
    p = sh.run(stdin="create queue /queue/in3\nlist queues\n")
    assert p.returncode == 0 and p.stdout.endswith("3 queues\n")


def test_quit_ends_a_script_successfully(sh):
    p = sh.run(stdin="create queue /queue/q1\nquit\ncreate queue /queue/q2\n")
    assert p.returncode == 0
    assert sh.ctl.call("show /queue/q2")["status"] == 404


# ---- STOMP: publish and tail -------------------------------------------------

def test_publish_then_consume_with_stomp(broker, sh):
    out = sh.ok("publish /queue/pub 'hello world' content-type=text/plain priority=4")
    assert out == "published 11 bytes to /queue/pub\n"
    reply = sh.json("publish /queue/pub second")
    assert reply["ok"] and reply["data"] == {"destination": "/queue/pub", "bytes": 6}
    c, rec = client(broker)
    c.subscribe("/queue/pub", id="1")
    msgs = rec.wait_messages(2)
    assert msgs[0].body == "hello world"
    assert msgs[0].headers["content-type"] == "text/plain" and msgs[0].headers["priority"] == "4"
    assert msgs[1].body == "second"
    c.disconnect()


def test_publish_failures_exit_non_zero(broker, sh):
    sh.ok("create queue /queue/full max-length=1 overflow=reject; publish /queue/full one")
    code, err = sh.fails("publish /queue/full two; stats")
    assert code == 1 and err.startswith("mqsh: post to /queue/full failed: ") and "full" in err
    code, err = sh.fails("publish /queue/x body no-equals-sign")
    assert err == "mqsh: publish: header 'no-equals-sign' is not NAME=VALUE"
    # nobody listening on the STOMP port: the library's reason, one line
    p = mqsh("-S", broker.info["control_socket"], "--port", "1", "-c", "publish /queue/x y")
    assert p.returncode == 1 and p.stderr == "mqsh: cannot connect to 127.0.0.1:1: Connection refused\n"


def test_publish_over_tls_from_mq_client_variables(make_broker, tmp_path):
    # The certificate helpers of the TLS tests; a CA of our own per test.
    from test_operations import make_ca, make_cert
    d = str(tmp_path)
    make_ca(d, "testca")
    make_ca(d, "otherca")
    make_cert(d, "testca", "localhost", san="localhost")
    b = make_broker("-k", os.path.join(d, "localhost.pem"))
    env = clean_env(MQ_CLIENT_CA_CHAIN=os.path.join(d, "testca.pem"), MQ_CLIENT_SERVER_NAME="localhost")
    # the variables turn TLS on, so the connection file's tls_port is used
    p = mqsh("-C", b.conn_file, "-c", "publish /queue/tls secret", env=env)
    assert p.returncode == 0, p.stderr
    c, rec = client(b)
    c.subscribe("/queue/tls", id="1")
    assert rec.wait_messages(1)[0].body == "secret"
    c.disconnect()
    # a broker signed by another CA is refused: TLS was really in use
    env["MQ_CLIENT_CA_CHAIN"] = os.path.join(d, "otherca.pem")
    p = mqsh("-C", b.conn_file, "-c", "publish /queue/tls again", env=env)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "certificate verify failed" in p.stderr, p.stderr


def wait_subscribed(broker, dest):
    ctl = Control(broker)
    wait_for(lambda: any(s["destination"] == dest for s in ctl.ok("list subscriptions")),
             what=f"a subscription to {dest}")


def start(args, **kw):
    return subprocess.Popen([MQSH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), **kw)


def finish(proc, timeout=10):
    out, err = proc.communicate(timeout=timeout)
    no_sanitizer_report(err)
    return proc.returncode, out, err


def test_tail_receives_count_messages_and_exits_0(broker, sh):
    proc = start(["-C", broker.conn_file, "-c", "tail /queue/tail 3"])
    wait_subscribed(broker, "/queue/tail")
    p, rec = client(broker)
    for i in range(5):
        p.send("/queue/tail", f"job {i}", headers={"job": str(i)})
    p.send("/queue/tail", "x", receipt="r")
    rec.wait_receipt("r")
    rc, out, err = finish(proc)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("/queue/tail message-id=") and " job=0" in lines[0]
    assert [lines[i] for i in (1, 3, 5)] == ["  job 0", "  job 1", "  job 2"]
    # what tail printed was consumed; the rest is still there, in order
    wait_for(lambda: sh.ctl.ok("show /queue/tail")["depth"] == 3, what="depth 3 after tail")
    c, crec = client(broker)
    c.subscribe("/queue/tail", id="1")
    assert crec.wait_messages(3) and crec.bodies() == ["job 3", "job 4", "x"]
    c.disconnect()
    p.disconnect()


def test_tail_json_and_topics(broker):
    proc = start(["-C", broker.conn_file, "--json", "-c", "tail /topic/news 2"])
    wait_subscribed(broker, "/topic/news")
    p, _ = client(broker)
    p.send("/topic/news", "first\nline two")
    p.send("/topic/news", "second", headers={"k": "v"})
    rc, out, err = finish(proc)
    assert rc == 0, err
    msgs = [json.loads(line) for line in out.splitlines()]
    assert [m["body"] for m in msgs] == ["first\nline two", "second"]
    assert msgs[1]["destination"] == "/topic/news" and msgs[1]["headers"]["k"] == "v"
    p.disconnect()


def test_tail_stops_on_ctrl_c_with_status_0(broker, sh):
    proc = start(["-C", broker.conn_file, "-c", "tail /queue/forever; create queue /queue/after"])
    wait_subscribed(broker, "/queue/forever")
    p, _ = client(broker)
    p.send("/queue/forever", "seen")
    wait_for(lambda: sh.ctl.ok("show /queue/forever")["messages_out"] == 1, what="the delivery")
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 0 and err == "", err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("/queue/forever message-id=") and lines[1] == "  seen", out
    # Ctrl-C ended the script as well
    assert sh.ctl.call("show /queue/after")["status"] == 404
    wait_for(lambda: not sh.ctl.ok("list subscriptions"), what="the tail's subscription to go")
    p.disconnect()


def test_tail_bad_count(sh):
    assert sh.fails("tail /queue/x lots")[1] == \
        "mqsh: tail: COUNT: expected a number of messages (1 or more), got 'lots'"


# ---- events and run -----------------------------------------------------------

def test_events_stream_until_ctrl_c(broker, sh):
    for opts in ([], ["--json"]):
        proc = start(["-S", broker.info["control_socket"], *opts, "-c", "events"], bufsize=1)
        # the stream is set up once the broker's reply is in
        if opts:
            assert json.loads(proc.stdout.readline())["message"].startswith("streaming events")
        else:
            assert proc.stderr.readline() == "streaming broker events until Ctrl-C\n"
        name = f"/queue/ev{len(opts)}"
        sh.ctl.ok(f"create queue {name}")
        line = proc.stdout.readline().rstrip("\n")
        if opts:
            ev = json.loads(line)
            assert ev["event"] == "destination-created" and ev["name"] == name and ev["time_ms"] > 0
        else:
            assert re.match(rf"^\d\d:\d\d:\d\d\.\d\d\d destination-created name={name} type=queue vhost=/$",
                            line), line
        proc.send_signal(signal.SIGINT)
        rc, out, err = finish(proc)
        assert rc == 0 and out == "" and err == "", (rc, out, err)


def test_run_needs_no_broker_of_its_own(tmp_path):
    # regression: mqsh refused to run a scenario when no broker answered on
    # its default socket, although scenarios start the brokers they need
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    p = subprocess.run([MQSH, "run", os.path.join(ROOT, "scenarios", "hold_until_subscribe.lua")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "scenario hold_until_subscribe.lua ok" in p.stdout


# ---- interactive, under a pseudo-terminal (tmux) ---------------------------------

class Tmux:
    """mqsh in a tmux pane of its own server, driven by keys, read from the screen."""

    def __init__(self, tmp_path, command):
        self.server = f"mqsh-test-{os.getpid()}-{time.monotonic_ns()}"
        self.home = tmp_path / "home"
        self.home.mkdir()
        env = " ".join(f"{k}={v}" for k, v in {
            "HOME": str(self.home), "TERM": "xterm", "INPUTRC": "/dev/null",
            "ASAN_OPTIONS": "detect_leaks=1:exitcode=66", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=67"}.items())
        script = f"env {env} {command}; echo MQSH-EXIT=$?; sleep 60"
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "t", script)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.server, "-f", "/dev/null", *args], capture_output=True,
                              text=True, timeout=10)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-500").stdout

    def wait(self, pred, what, timeout=10):
        try:
            return wait_for(lambda: pred(self.screen()), timeout=timeout, what=what)
        except AssertionError:
            raise AssertionError(f"{what}; the screen:\n{self.screen()}")

    def wait_text(self, text, timeout=10):
        return self.wait(lambda s: text in s, f"{text!r} on the screen", timeout)

    def last_line(self):
        lines = [line for line in self.screen().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def close(self):
        self.tmux("kill-server")


@pytest.fixture
def term(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (ci/deps installs it)")
    made = []

    def make(command):
        t = Tmux(tmp_path, command)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


def test_interactive_prompt_completion_history_and_ctrl_c(broker, term):
    ctl = Control(broker)
    ctl.ok("create queue /queue/zebra-jobs")
    prompt = f"mqsh 127.0.0.1:{broker.port}> "
    t = term(f"{MQSH} -C {broker.conn_file}")
    t.wait_text(prompt)
    assert "Connected to mqbroker" in t.screen()

    # Tab completes a live queue name fetched from the broker
    t.type("show /queue/zeb")
    t.keys("Tab")
    t.wait(lambda s: s.rstrip().endswith(prompt + "show /queue/zebra-jobs"), "the completed queue name")
    t.keys("Enter")
    t.wait(lambda s: re.search(r"^name +/queue/zebra-jobs$", s, re.M), "show's output")
    t.wait(lambda s: s.rstrip().endswith(prompt.rstrip()), "the prompt again")

    # history: Up recalls the last command, and ~/.mqsh_history has it already
    t.keys("Up")
    t.wait(lambda s: s.rstrip().endswith(prompt + "show /queue/zebra-jobs"), "the recalled command")
    hist = t.home / ".mqsh_history"
    assert "show /queue/zebra-jobs" in hist.read_text()
    t.keys("C-u")

    # Ctrl-C at the prompt drops the line: the delete never runs
    t.type("delete /queue/zebra-jobs")
    t.keys("C-c")
    t.wait(lambda s: s.rstrip().endswith(prompt.rstrip()), "a fresh prompt after Ctrl-C")
    t.type("stats")
    t.keys("Enter")
    t.wait(lambda s: re.search(r"^destinations +1$", s, re.M), "stats' output")
    assert ctl.call("show /queue/zebra-jobs")["ok"]

    # an error is one line and the shell stays
    t.type("lst")
    t.keys("Enter")
    t.wait_text("error: unknown command 'lst' (try: list, help)")

    # Ctrl-C stops a running tail and the prompt comes back
    t.type("tail /queue/zebra-jobs")
    t.keys("Enter")
    wait_subscribed(broker, "/queue/zebra-jobs")
    p, _ = client(broker)
    p.send("/queue/zebra-jobs", "job-one")
    t.wait_text("  job-one")
    t.keys("C-c")
    t.wait_text("tail: 1 message from /queue/zebra-jobs")
    t.wait(lambda s: s.rstrip().endswith(prompt.rstrip()), "the prompt after tail")
    wait_for(lambda: not ctl.ok("list subscriptions"), what="tail to unsubscribe")
    t.type("list queues")
    t.keys("Enter")
    t.wait(lambda s: re.search(r"> list queues\nname +type.*\n/queue/zebra-jobs +queue ", s), "the queue table")
    p.disconnect()

    # Ctrl-D leaves, with status 0, and the history file holds the session
    t.keys("C-d")
    t.wait_text("MQSH-EXIT=0")
    lines = hist.read_text().splitlines()
    assert lines[-3:] == ["lst", "tail /queue/zebra-jobs", "list queues"]
    assert "delete /queue/zebra-jobs" not in lines
    assert "Sanitizer" not in t.screen()


def test_interactive_prompt_from_the_socket_alone(broker, term):
    # with only -S, the broker's stats say where its clients connect
    sock = broker.info["control_socket"]
    prompt = f"mqsh 127.0.0.1:{broker.port}>"
    t = term(f"{MQSH} -S {sock}")
    t.wait_text(prompt + " ")
    # completion of command names, and of an option after its key
    t.type("cre")
    t.keys("Tab")
    t.wait(lambda s: s.rstrip().endswith("> create"), "the completed command")
    t.type("queue /queue/opt overflow=re")
    t.keys("Tab")
    t.wait(lambda s: s.rstrip().endswith("overflow=reject"), "the completed option value")
    t.keys("Enter")
    t.wait_text("queue /queue/opt created")
    assert Control(broker).ok("show /queue/opt")["overflow"] == "reject"
    # Ctrl-C ends events; the prompt comes back on a line of its own
    t.type("events")
    t.keys("Enter")
    t.wait_text("streaming broker events until Ctrl-C")
    Control(broker).ok("create topic /topic/seen")
    t.wait(lambda s: re.search(r"destination-created name=/topic/seen type=topic", s), "the event")
    t.keys("C-c")
    t.wait(lambda s: s.rstrip().endswith("^C\n" + prompt), "the prompt on its own line")
    t.type("quit")
    t.keys("Enter")
    t.wait_text("MQSH-EXIT=0")


def test_browse_and_tail_with_a_selector(broker, sh):
    """browse prints what a queue holds without consuming it; tail takes
    only what its selector matches."""
    conn, rec = client(broker)
    for i, kind in enumerate(["a", "b", "a"]):
        conn.send("/queue/sel", f"m{i}", headers={"kind": kind}, receipt=f"r{i}")
    rec.wait_receipt("r2")
    conn.disconnect()
    out = sh.ok("browse /queue/sel")
    assert [l.strip() for l in out.splitlines() if l.startswith("  ")] == ["m0", "m1", "m2"]
    out = sh.ok("browse /queue/sel selector=\"kind = 'a'\"")
    assert [l.strip() for l in out.splitlines() if l.startswith("  ")] == ["m0", "m2"]
    out = sh.ok("tail /queue/sel 2 selector=\"kind = 'a'\"")
    assert [l.strip() for l in out.splitlines() if l.startswith("  ")] == ["m0", "m2"]
    assert Control(broker).ok("show /queue/sel")["depth"] == 1
