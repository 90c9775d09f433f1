"""STOMP over WebSocket from a real browser: @stomp/stompjs in headless
Chromium (Debian's chromium, driven by playwright-core) on a page served
from loopback, against stomp.py clients on the broker's TCP port. One
browser for the module: starting Chromium is the slow part."""
import pytest

from mqtest import Broker, Control, client, free_port, wait_for
from wstest import Browser, PageServer, js


@pytest.fixture(scope="module")
def env():
    port = free_port()
    b = Broker("--ws-port", str(port)).start()
    pages = PageServer()
    browser = None
    try:
        browser = Browser(pages.url())
        yield b, browser, f"ws://127.0.0.1:{port}/ws"
    finally:
        if browser:
            browser.stop()
        pages.stop()
        try:
            rc = b.stop()
        finally:
            b.cleanup()
        assert rc == 0


@pytest.fixture
def page(env):
    """A connected stompjs client in the page; disconnected afterwards."""
    b, browser, url = env
    headers = browser.call(js("connect", url, {"login": "guest", "passcode": "guest"}, 0))
    assert isinstance(headers, dict) and headers["version"] == "1.2", headers
    yield b, browser
    browser.call("t.disconnect().then(() => { t.received = []; t.receipts = []; return true; })")


def test_browser_publishes_and_stomp_py_receives(page):
    b, browser = page
    conn, rec = client(b)
    conn.subscribe("/queue/from-browser", id="1")
    bodies = [f"browser message {i} \u00e9\u00e8" for i in range(20)]
    # the page waits for the receipt on the last one
    assert browser.call(js("publish", "/queue/from-browser", bodies)) == 20
    assert rec.wait_messages(20) and rec.bodies() == bodies
    conn.disconnect()


def test_stomp_py_publishes_and_browser_receives(page):
    b, browser = page
    assert browser.call(js("subscribe", "/topic/to-browser"))
    # the SUBSCRIBE is in flight: wait until the broker has the subscriber
    ctl = Control(b)
    wait_for(lambda: ctl.ok("show /topic/to-browser")["consumers"] == 1, what="the browser's subscription")
    ctl.close()
    conn, _ = client(b)
    for i in range(10):
        conn.send("/topic/to-browser", f"to the browser {i}")
    conn.disconnect()
    assert browser.call(js("waitReceived", 10, 10000)) == [f"to the browser {i}" for i in range(10)]


def test_browser_transactions_receipts_and_acks(page):
    b, browser = page
    # aborted, then committed: only the committed ones arrive
    assert browser.call(js("transaction", "/queue/browser-tx", ["no", "nope"], False))
    assert browser.call(js("transaction", "/queue/browser-tx", ["yes 1", "yes 2"], True))
    assert browser.call(js("subscribe", "/queue/browser-tx", "client-individual"))
    assert browser.call(js("waitReceived", 2, 10000)) == ["yes 1", "yes 2"]
    ctl = Control(b)
    # acked from the page: nothing left, nothing unacknowledged
    wait_for(lambda: ctl.ok("show /queue/browser-tx")["depth"] == 0, what="depth 0")
    row = ctl.ok("show /queue/browser-tx")
    assert row.get("unacked", 0) == 0, row
    ctl.close()
