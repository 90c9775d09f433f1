"""The web console in a real browser: headless Chromium (Debian's
/usr/bin/chromium, driven by playwright-core) on the page the broker
serves, clicking what an operator clicks. Logging in, creating a queue,
publishing to it from the page and watching its depth rise, purging it,
disconnecting a stomp.py client and watching it go; a refused login; an
action without the CSRF token, and one from another site, refused. One
broker and one browser for the module: starting Chromium is the slow part.

MQ_CONSOLE_SCREENSHOT=docs/console-overview.png makes
test_overview_screenshot write the picture docs/console.md shows."""
import json
import os
import re
import subprocess
import threading
import http.server

import pytest

from consoletest import USERS, Console, Driver
from mqtest import MQSH, Control, client, free_port, wait_for


@pytest.fixture(scope="module")
def env():
    from mqtest import Broker
    port = free_port()
    b = Broker("-w", str(port), "64", "", config=USERS).start()
    drv = None
    try:
        drv = Driver()
        yield b, drv, f"http://127.0.0.1:{port}"
    finally:
        if drv:
            drv.stop()
        try:
            rc = b.stop()
        finally:
            b.cleanup()
        assert rc == 0


def js(v):
    return json.dumps(v)


def login(drv, url, user="admin", password="secret"):
    """A fresh browser session, logged in; returns what the header says."""
    return drv.run(f"""
        await context.clearCookies();
        await page.goto({js(url + '/')});
        await page.waitForSelector('#login-form', {{ state: 'visible' }});
        await page.fill('#login', {js(user)});
        await page.fill('#password', {js(password)});
        await page.click('#login-button');
        await page.waitForSelector('#top', {{ state: 'visible' }});
        await page.waitForFunction(() => document.getElementById('live').textContent === 'live');
        return await page.textContent('#whoami');
    """)


def go(drv, url, hash_):
    drv.run(f"await page.goto({js(url + '/' + hash_)}); await page.waitForSelector('#top', {{ state: 'visible' }});")


def test_refused_login(env):
    b, drv, url = env
    message = drv.run(f"""
        await context.clearCookies();
        await page.goto({js(url + '/')});
        await page.fill('#login', 'admin');
        await page.fill('#password', 'not the password');
        await page.click('#login-button');
        await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
        return [await page.textContent('#login-error'), await page.isVisible('#top')];
    """)
    assert message == ["login failed: wrong login or password", False]
    assert "web console: login refused from 127.0.0.1" in b.read_log()


def test_create_publish_and_purge_from_the_page(env):
    b, drv, url = env
    assert login(drv, url) == "admin (admin)"
    go(drv, url, "#/destinations")
    drv.run("""
        await page.fill('#create-name', '/queue/from-page');
        await page.check('#create-persistent');
        await page.click('#create-button');
        await page.waitForSelector('tr[data-name="/queue/from-page"]');
    """)
    row = Control(b).ok("show /queue/from-page")
    assert row["type"] == "queue" and row["persistent"] is True and row["depth"] == 0
    # its page, from the link in the table
    drv.run("""
        await page.click('tr[data-name="/queue/from-page"] a');
        await page.waitForSelector('#destination-page', { state: 'visible' });
        await page.waitForFunction(() => document.getElementById('d-title').textContent === '/queue/from-page');
    """)
    for i in range(3):
        drv.run(f"""
            await page.fill('#d-publish-body', {js(f'render frame {i}')});
            await page.fill('#d-publish-headers', 'job=42');
            await page.click('#d-publish-button');
            await page.waitForFunction(() => /^sent /.test(document.getElementById('notice').textContent));
            await page.evaluate(() => {{ document.getElementById('notice').textContent = ''; }});
        """)
    # the depth rises on the page, from the live stream
    drv.run("await page.waitForFunction(() => document.getElementById('d-depth').textContent === '3');")
    assert Control(b).ok("show /queue/from-page")["depth"] == 3
    drv.run("""
        await page.click('#d-purge');
        await page.waitForSelector('#confirm', { state: 'visible' });
        await page.click('#confirm-ok');
        await page.waitForFunction(() => document.getElementById('d-depth').textContent === '0');
    """)
    assert Control(b).ok("show /queue/from-page")["depth"] == 0
    # what was published arrived as sent
    conn, rec = client(b, login="viewer", passcode="look")
    drv.run("""
        await page.fill('#d-publish-body', 'after the purge');
        await page.click('#d-publish-button');
        await page.waitForFunction(() => document.getElementById('d-depth').textContent === '1');
    """)
    conn.subscribe("/queue/from-page", id="1")
    m = rec.wait_messages(1)[0]
    assert m.body == "after the purge" and m.headers.get("job") == "42"
    conn.disconnect()


def test_a_destination_page_asks_once_a_second_and_its_buttons_stay(env):
    """An open destination page refreshes its `show` with the snapshot,
    once a second: not in a loop as fast as the broker answers, which
    replaced the children's Detach buttons under the pointer."""
    b, drv, url = env
    ctl = Control(b)
    ctl.ok("create pubsub /pubsub/page-children")
    ctl.ok("attach /pubsub/page-children /queue/page-child")
    login(drv, url)
    go(drv, url, "#/destination/%2F//pubsub/page-children")
    asked = drv.run("""
        await page.waitForSelector('button.detach[data-child="/queue/page-child"]');
        let n = 0;
        const count = (r) => { if (r.url().endsWith('/console/api/command')) n++; };
        page.on('request', count);
        await page.waitForTimeout(4000);
        page.off('request', count);
        return n;
    """)
    assert asked <= 8, f"{asked} commands in 4 s from one open destination page"
    drv.run("""
        await page.click('button.detach[data-child="/queue/page-child"]', { timeout: 5000 });
        await page.waitForSelector('button.detach[data-child="/queue/page-child"]', { state: 'detached' });
        await page.fill('#d-attach-child', '/queue/page-child-2');
        await page.click('#d-attach');
        await page.waitForSelector('button.detach[data-child="/queue/page-child-2"]');
    """)
    assert ctl.ok("show /pubsub/page-children")["child_names"] == ["/queue/page-child-2"]
    ctl.close()


def test_disconnect_a_client_and_see_it_gone(env):
    b, drv, url = env
    conn, rec = client(b, login="viewer", passcode="look")
    ctl = Control(b)
    ids = [c["id"] for c in ctl.ok("list clients") if c["login"] == "viewer"]
    assert len(ids) == 1
    cid = ids[0]
    login(drv, url)
    go(drv, url, "#/connections")
    cells = drv.run(f"""
        const row = await page.waitForSelector('tr[data-id="{cid}"]');
        return [await (await row.$('td[data-key="login"]')).textContent(),
                await (await row.$('td[data-key="transport"]')).textContent()];
    """)
    assert cells == ["viewer", "tcp"]
    drv.run(f"""
        await page.click('tr[data-id="{cid}"] button.disconnect');
        await page.waitForSelector('#confirm', {{ state: 'visible' }});
        await page.fill('#confirm-reason', 'maintenance window');
        await page.click('#confirm-ok');
        await page.waitForSelector('tr[data-id="{cid}"]', {{ state: 'detached' }});
    """)
    wait_for(lambda: rec.errors, what="the ERROR frame")
    assert "maintenance window" in rec.errors[0].headers.get("message", "") + rec.errors[0].body
    assert cid not in [c["id"] for c in ctl.ok("list clients")]
    ctl.close()


def test_an_action_without_the_csrf_token_is_refused(env):
    b, drv, url = env
    login(drv, url)
    # the page's own origin and cookie, but no token
    status, message = drv.run("""
        const r = await page.evaluate(async () => {
            const res = await fetch('/console/api/command', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                             body: JSON.stringify({ args: ['create', 'queue', '/queue/no-token'] }) });
            return [res.status, (await res.json()).message];
        });
        return r;
    """)
    assert status == 403 and message.startswith("missing CSRF token"), message
    assert Control(b).call("show /queue/no-token")["status"] == 404


def test_a_page_of_another_site_cannot_act(env):
    """A page on another origin (another port of the same loopback address:
    the same site, so the SameSite cookie goes along) posts a form to the
    console: refused for its Origin, and nothing changes."""
    b, drv, url = env
    login(drv, url)
    body = ('<form id="f" method="POST" enctype="text/plain" action="' + url + '/console/api/command">'
            '<input name=\'{"args":["create","queue","/queue/from-evil"],"x":"\' value=\'"}\'></form>'
            '<script>document.getElementById("f").submit()</script>').encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        text = drv.run(f"""
            await page.goto('http://127.0.0.1:{evil.server_address[1]}/');
            await page.waitForURL(/console\\/api\\/command/);
            return await page.textContent('body');
        """)
    finally:
        evil.shutdown()
        evil.server_close()
    assert "cross-origin request refused" in text, text
    assert Control(b).call("show /queue/from-evil")["status"] == 404


def test_a_viewer_gets_no_actions(env):
    b, drv, url = env
    assert login(drv, url, "viewer", "look") == "viewer (viewer)"
    Control(b).ok("create queue /queue/for-viewer")
    go(drv, url, "#/destination/%2F//queue/for-viewer")
    hidden = drv.run("""
        await page.waitForFunction(() => document.getElementById('d-type').textContent === 'queue');
        return [await page.isVisible('#d-publish-form'), await page.isVisible('#d-purge'),
                await page.isVisible('#d-chart-depth')];
    """)
    assert hidden == [False, False, True]


def test_events_and_missing_pages(env):
    b, drv, url = env
    login(drv, url)
    go(drv, url, "#/events")
    Control(b).ok("create pubsub /pubsub/fanout-for-events")
    Control(b).ok("attach /pubsub/fanout-for-events /queue/child-for-events")
    text = drv.run("""
        await page.waitForFunction(() => document.getElementById('events-list').textContent.includes('child-attached'));
        return await page.textContent('#events-list');
    """)
    assert "/queue/child-for-events" in text
    go(drv, url, "#/bridges")
    assert drv.run("return [await page.isVisible('#bridges-empty'), await page.textContent('#bridges-empty')];") == \
        [True, "No bridges."]
    go(drv, url, "#/nowhere")
    assert drv.run("return await page.textContent('#missing-path');") == "#/nowhere"


def bridge_row(drv, name):
    """The bridge's row on the Bridges page, cell by cell, as the page shows
    it; the lag cell says "MESSAGES · SECONDS"."""
    return drv.run(f"""
        const row = await page.waitForSelector('tr[data-name="{name}"]');
        const cells = {{}};
        for (const td of await row.$$('td[data-key]')) {{
            const k = await td.getAttribute('data-key');
            if (k) cells[k] = (await td.textContent()).trim();
        }}
        [cells.lag_messages, cells.lag_seconds] = cells.lag_messages.split(' · ');
        cells.row_state = await row.getAttribute('data-state');
        return cells;
    """)


def wait_cell(drv, name, key, text):
    drv.run(f"""
        await page.waitForFunction(() => {{
            const td = document.querySelector('tr[data-name="{name}"] td[data-key="{key}"]');
            return td && td.textContent.split(' · ')[0] === {js(text)};
        }});
    """)


def send_receipted(broker, dest, bodies):
    conn, rec = client(broker, login="admin", passcode="secret")
    for i, body in enumerate(bodies):
        conn.send(dest, body, headers={"persistent": "true", "receipt": f"r{i}"})
    rec.wait_receipt(f"r{len(bodies) - 1}", timeout=10)
    conn.disconnect()


def mqsh_show_bridge(broker, name):
    """What mqsh prints for `show bridge NAME`, as a dict of its lines."""
    p = subprocess.run([MQSH, "-S", broker.info["control_socket"], "show", "bridge", name],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return dict(line.split(None, 1) if " " in line.strip() else (line.strip(), "")
                for line in p.stdout.splitlines() if line.strip())


def test_a_bridge_added_watched_paused_resumed_and_deleted_from_the_console(env, make_broker):
    """Two brokers: an outbound bridge from A to B added on A's console,
    seen running on the remote node it uses, its counters moving after a
    stomp.py client publishes; paused from the page (and `show bridge`
    and mqsh say so too), its lag growing while paused; resumed from its
    own page; its events on the events page; deleted after a confirmation."""
    _, drv, _ = env
    remote = make_broker()
    port = free_port()
    a = make_broker("-w", str(port), "64", "",
                    config=USERS + 'destinations = { { "/queue/outbox", persistent = true } }\n')
    url = f"http://127.0.0.1:{port}"
    node = f"127.0.0.1:{remote.port}"
    login(drv, url)
    go(drv, url, "#/bridges")
    assert drv.run("return await page.isVisible('#bridges-empty');") is True
    drv.run(f"""
        await page.click('#bridge-add summary');
        await page.fill('#bridge-add-name', 'to-b');
        await page.selectOption('#bridge-add-direction', 'out');
        await page.fill('#bridge-add-from', '/queue/outbox');
        await page.fill('#bridge-add-to', '/queue/inbox');
        await page.fill('#bridge-add-hosts', {js(node)});
        await page.fill('#bridge-add-options', 'window=50\\nheartbeat=2s');
        await page.click('#bridge-add-button');
        await page.waitForSelector('tr[data-name="to-b"][data-state="running"]');
    """)
    ctl = Control(a)
    shown = ctl.ok("show bridge to-b")
    assert shown["direction"] == "out" and shown["window"] == 50 and shown["heartbeat_ms"] == 2000
    assert re.search(r"admin command from web console 127\.0\.0\.1:\d+ login=admin: bridge", a.read_log())
    row = bridge_row(drv, "to-b")
    assert row["state"] == "running" and row["node"] == node and row["from"] == "/queue/outbox → /queue/inbox"
    assert row["forwarded"] == "0" and row["lag_messages"] == "0"

    # a stomp.py client publishes: the counters move on the page
    send_receipted(a, "/queue/outbox", [f"job {i}" for i in range(5)])
    wait_cell(drv, "to-b", "acknowledged", "5")
    row = bridge_row(drv, "to-b")
    assert row["forwarded"] == "5" and row["pending"] == "0" and row["lag_messages"] == "0", row
    wait_for(lambda: Control(remote).ok("show /queue/inbox")["depth"] == 5, what="5 messages at B")

    # paused from the page: the page, show bridge and mqsh agree
    drv.run("""
        await page.click('tr[data-name="to-b"] button.bridge-pause');
        await page.waitForSelector('tr[data-name="to-b"][data-state="paused"]');
        await page.waitForSelector('tr[data-name="to-b"] button.bridge-resume');
    """)
    assert ctl.ok("show bridge to-b")["state"] == "paused"
    sh = mqsh_show_bridge(a, "to-b")
    assert sh["state"] == "paused" and sh["paused"] == "true" and sh["node"] == node, sh
    send_receipted(a, "/queue/outbox", [f"later {i}" for i in range(3)])
    wait_cell(drv, "to-b", "lag_messages", "3")
    assert bridge_row(drv, "to-b")["forwarded"] == "5"
    assert Control(remote).ok("show /queue/inbox")["depth"] == 5

    # the bridge's own page: its figures, its subscription, and Resume
    drv.run("""
        await page.click('tr[data-name="to-b"] td[data-key="name"] a');
        await page.waitForSelector('#bridge-page', { state: 'visible' });
        await page.waitForFunction(() => document.getElementById('b-state').textContent === 'paused');
        await page.waitForSelector('#b-subscriptions td[data-key="destination"]');
    """)
    page = drv.run("""
        return { node: await page.textContent('#b-node'), lag: await page.textContent('#b-lag-messages'),
                 forwarded: await page.textContent('#b-forwarded'), resume: await page.isEnabled('#b-resume'),
                 pause: await page.isEnabled('#b-pause'),
                 sub: await page.textContent('#b-subscriptions td[data-key="destination"]'),
                 details: await page.textContent('#b-details') };
    """)
    assert page["node"] == node and page["lag"] == "3" and page["forwarded"] == "5", page
    assert page["resume"] and not page["pause"] and page["sub"] == "/queue/outbox", page
    assert "remote broker id" in page["details"] and "window=50" in page["details"], page
    drv.run("""
        await page.click('#b-resume');
        await page.waitForFunction(() => document.getElementById('b-state').textContent === 'running');
        await page.waitForFunction(() => document.getElementById('b-acknowledged').textContent === '8');
    """)
    r = ctl.ok("show bridge to-b")
    assert r["state"] == "running" and r["acknowledged"] == 8 and r["lag_messages"] == 0
    wait_for(lambda: Control(remote).ok("show /queue/inbox")["depth"] == 8, what="8 messages at B")

    # its events, as the broker sent them
    go(drv, url, "#/events")
    text = drv.run("""
        await page.waitForFunction(() => document.getElementById('events-list').textContent.includes('bridge-resumed'));
        return await page.textContent('#events-list');
    """)
    for event in ("bridge-added", "bridge-paused", "bridge-resumed"):
        assert event in text, text

    # deleted, after a confirmation (refused once)
    go(drv, url, "#/bridges")
    drv.run("""
        await page.click('tr[data-name="to-b"] button.bridge-delete');
        await page.waitForSelector('#confirm', { state: 'visible' });
        await page.click('#confirm-cancel');
    """)
    assert ctl.ok("show bridge to-b")["name"] == "to-b"
    drv.run("""
        await page.click('tr[data-name="to-b"] button.bridge-delete');
        await page.waitForSelector('#confirm', { state: 'visible' });
        await page.click('#confirm-ok');
        await page.waitForSelector('tr[data-name="to-b"]', { state: 'detached' });
        await page.waitForSelector('#bridges-empty', { state: 'visible' });
    """)
    assert ctl.call("show bridge to-b")["status"] == 404 and ctl.ok("list bridges") == []
    ctl.close()


def test_a_failing_bridge_says_why_and_raises_the_stall_alarm(env, make_broker):
    """A bridge to a remote that is not there yet: its row says failing
    with the reason, the overview lists it among the alarms, and once
    nothing has moved for stall_timeout with messages waiting the stall
    alarm shows; bridge-state and bridge-stalled arrive on the events page.
    The remote started: running again, the alarms gone, what waited
    forwarded."""
    _, drv, _ = env
    remote = make_broker(port=free_port(), start=False)
    port = free_port()
    a = make_broker("-w", str(port), "64", "", config=USERS + f"""
destinations = {{ {{ "/queue/outbox", persistent = true }} }}
bridges = {{ {{ name = "to-b", direction = "out", from = "/queue/outbox", to = "/queue/inbox",
               hosts = {{ "127.0.0.1:{remote.req_port}" }}, stall_timeout = "1s", connect_timeout = "100ms",
               reconnect_min = "50ms", reconnect_max = "300ms" }} }}
""")
    url = f"http://127.0.0.1:{port}"
    login(drv, url)
    go(drv, url, "#/bridges")
    send_receipted(a, "/queue/outbox", [f"job {i}" for i in range(4)])
    error = drv.run("""
        await page.waitForSelector('tr[data-name="to-b"][data-state="failing"]');
        return await page.textContent('tr[data-error-for="to-b"] .bridge-error');
    """)
    assert f"127.0.0.1:{remote.req_port}" in error and "refused" in error, error

    def agree():
        shown = Control(a).ok("show bridge to-b")
        page_error = drv.run("return await page.textContent('tr[data-error-for=\"to-b\"] .bridge-error');")
        return shown if shown["state"] == "failing" and "failing: " + shown["error"] == page_error else None
    r = wait_for(agree, what="the page and show bridge to agree on the error")
    assert r["node"] == "" and bridge_row(drv, "to-b")["node"] == "-"
    go(drv, url, "#/")
    alarms = drv.run("""
        await page.waitForFunction(() => /Bridge to-b stalled/.test(document.getElementById('ov-alarms').textContent));
        return await page.textContent('#ov-alarms');
    """)
    assert "Bridge to-b failing: " in alarms and "4 messages waiting" in alarms, alarms
    go(drv, url, "#/events")
    text = drv.run("""
        await page.waitForFunction(() => document.getElementById('events-list').textContent.includes('bridge-stalled'));
        return await page.textContent('#events-list');
    """)
    assert "state=failing" in text and "lag_messages=4" in text and "refused" in text, text
    remote.start()
    go(drv, url, "#/bridges")
    wait_cell(drv, "to-b", "acknowledged", "4")
    drv.run("""
        await page.waitForSelector('tr[data-name="to-b"][data-state="running"]');
        await page.waitForFunction(() => !document.querySelector('tr[data-name="to-b"] .tag.stalled'));
        await page.waitForSelector('tr[data-error-for="to-b"]', { state: 'detached' });
    """)
    go(drv, url, "#/events")
    drv.run("await page.waitForFunction(() => document.getElementById('events-list').textContent.includes('bridge-moving'));")
    go(drv, url, "#/")
    drv.run("await page.waitForFunction(() => document.getElementById('ov-alarms').textContent === 'No alarms');")
    # a viewer sees the bridge, and no button to touch it
    assert login(drv, url, "viewer", "look") == "viewer (viewer)"
    go(drv, url, "#/bridges")
    seen = drv.run("""
        await page.waitForSelector('tr[data-name="to-b"][data-state="running"]');
        return [await page.locator('tr[data-name="to-b"] button').count(), await page.isVisible('#bridge-add')];
    """)
    assert seen == [0, False]
    go(drv, url, "#/bridge/to-b")
    seen = drv.run("""
        await page.waitForFunction(() => document.getElementById('b-state').textContent === 'running');
        return [await page.textContent('#b-forwarded'), await page.isVisible('#b-pause'), await page.isVisible('#b-delete')];
    """)
    assert seen == ["4", False, False]


def test_overview_screenshot(env, tmp_path):
    """The overview with some traffic; the picture docs/console.md shows
    when MQ_CONSOLE_SCREENSHOT names where to write it."""
    b, drv, url = env
    target = os.environ.get("MQ_CONSOLE_SCREENSHOT")
    seconds = 30 if target else 3
    ctl = Control(b)
    ctl.ok("create queue /queue/renders persistent")
    ctl.ok("create queue /queue/results")
    ctl.ok("create pubsub /pubsub/jobs")
    ctl.ok("attach /pubsub/jobs /queue/jobs.archive")
    producer, _ = client(b, login="admin", passcode="secret")
    consumer, rec = client(b, login="viewer", passcode="look")
    consumer.subscribe("/queue/renders", id="1", ack="auto")
    login(drv, url)
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            for _ in range(20 + (i % 40)):
                producer.send("/queue/renders", f"frame {i}")
                producer.send("/queue/results", f"result {i}")
            i += 1
            stop.wait(0.1)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        go(drv, url, "#/")
        drv.run(f"await page.waitForTimeout({seconds * 1000});")
        figures = drv.run("""
            return [await page.textContent('#ov-connections'), await page.textContent('#ov-rate-in'),
                    await page.locator('#ov-chart polyline').count(), await page.textContent('#ov-alarms')];
        """)
    finally:
        stop.set()
        t.join()
    assert figures[0] == "2" and figures[1] not in ("-", "0") and figures[2] == 2 and figures[3] == "No alarms", figures
    path = target or str(tmp_path / "overview.png")
    drv.run(f"await page.screenshot({{ path: {js(os.path.abspath(path))} }});")
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    producer.disconnect()
    consumer.disconnect()
    ctl.close()


def test_logout(env):
    b, drv, url = env
    login(drv, url)
    shown = drv.run("""
        await page.click('#logout');
        await page.waitForSelector('#login-form', { state: 'visible' });
        const r = await page.evaluate(async () => (await fetch('/console/api/session')).status);
        return [await page.isVisible('#top'), r];
    """)
    assert shown == [False, 401]
