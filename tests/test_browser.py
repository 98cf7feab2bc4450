"""End to end in a real browser: Debian's chromium driven by Playwright, the real app served
over HTTP, a real RQ worker on real Redis and a real receiving server."""

from datetime import timedelta

from sqlalchemy import insert, select, update
from web_fixtures import PASSWORD, shot
from web_fixtures import browser_sign_in as sign_in

from tnt import accounts, delivery, endpoints
from tnt.clock import utcnow
from tnt.extensions import db
from tnt.models import Attempt, Delivery, Endpoint, Event


def expire_retry_wait():
    """Move the retry's due time into the past (as if the wait passed) and let the sweeper see it."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.status == "retrying")
        .values(next_attempt_at=utcnow() - timedelta(seconds=30))
    )
    db.session.commit()
    delivery.sweep()


def test_customer_journey(page, people, receiver, work):
    from playwright.sync_api import expect

    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    page.fill("#email", people.alice.email)
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Wrong email or password")
    sign_in(page, people.alice.email)
    expect(page.get_by_text("No endpoints yet")).to_be_visible()

    # Create an endpoint pointing at the real receiver, with a generated secret.
    page.click("text=Add endpoint")
    page.fill("#url", receiver.url)
    page.fill("#description", "Orders service")
    page.uncheck("input[value='sms.cancelled']")
    page.click("button:has-text('Generate')")
    expect(page.locator("#secret")).to_have_attribute("type", "text")
    secret = page.input_value("#secret")
    assert secret.startswith("whsec_")
    page.click("[data-secret=reveal]")
    expect(page.locator("#secret")).to_have_attribute("type", "password")
    expect(page.locator("#endpoint-form .error")).to_have_count(0)
    shot(page, "endpoint-form")  # a form filled in, ready to create: no error on it
    page.fill("#url", "not a url")
    page.click("button:has-text('Create endpoint')")
    expect(page.locator("#endpoint-form .error").first).to_contain_text("must not contain spaces")
    page.fill("#url", receiver.url)
    page.click("button:has-text('Create endpoint')")
    page.wait_for_url("**/endpoints")
    row = page.locator("#endpoints tbody tr").first
    expect(row).to_contain_text(receiver.url)
    expect(row).not_to_contain_text("sms.cancelled")

    # Send a test SMS; the worker submits it and the carrier reports delivery.
    page.click("nav >> text=Messages")
    page.fill("#mobile", "0712 345 678")
    page.fill("#message", "Your OTP is 847291.")
    page.select_option("#simulate", "delivered")
    page.click("button:has-text('Send test SMS')")
    expect(page.locator(".banner-success")).to_contain_text("queued")
    work()
    work()
    page.reload()
    first = page.locator("#messages tbody tr").first
    expect(first).to_contain_text("delivered")
    expect(first).to_contain_text("sms.sent")
    expect(first).to_contain_text("sms.delivered")
    page.select_option("#simulate", "hold")
    page.click("button:has-text('Send test SMS')")
    held = page.locator("#messages tbody tr").first
    expect(held).to_contain_text("queued")
    shot(page, "messages")
    held.locator("button:has-text('Cancel')").click()
    expect(page.locator("#messages tbody tr").first).to_contain_text("cancelled")
    assert [r["event"] for r in receiver.json()] == ["sms.sent", "sms.delivered"]

    # The deliveries in Logs; expand one.
    page.click("nav >> text=Logs")
    rows = page.locator("tr.log-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("sms.delivered")
    expect(page.locator("svg.chart")).to_be_visible()
    rows.first.click()  # anywhere on the row, with the mouse
    detail = page.locator("tr.detail-row:visible")
    expect(detail).to_contain_text("X-TalkNTalk-Signature")
    expect(detail).to_contain_text('"event": "sms.delivered"')
    assert secret not in detail.inner_text()
    shot(page, "logs")
    rows.first.click()
    expect(detail).to_have_count(0)

    # The receiver fails: a retry is scheduled, then the delivery fails after 4 attempts.
    receiver.respond = [(500, b"<b>database down</b>")]
    page.click("nav >> text=Endpoints")
    page.click("button:has-text('Send test event')")
    page.wait_for_url("**/logs?endpoint_id=*")
    work()
    page.reload()
    top = page.locator("tr.log-row").first
    expect(top).to_contain_text("retrying")
    expect(top).to_contain_text("500")
    for _ in range(3):
        expire_retry_wait()
        work()
    page.reload()
    top = page.locator("tr.log-row").first
    expect(top).to_contain_text("#4")
    expect(top).to_contain_text("failed")
    top.click()
    expect(page.locator("tr.detail-row:visible")).to_contain_text("<b>database down</b>")

    # Resend: the row updates in place and the new attempt appears above it.
    receiver.respond = [(200, b"thanks")]
    top.locator("button:has-text('Resend')").click()
    new = page.locator("tr.log-row.fresh")
    expect(new).to_contain_text("resend by alice@acme.test")
    expect(new).to_contain_text("delivered")
    expect(page.locator("tr.log-row").nth(1)).to_contain_text("#4")
    expect(page.locator("tr.log-row").nth(1)).to_contain_text("delivered")
    expect(page.locator("tr.log-row").nth(1).locator("button:has-text('Resend')")).to_have_count(0)

    # The endpoint's own page: its settings, its 24 hours, its recent deliveries.
    page.click("nav >> text=Endpoints")
    page.click(f"#endpoints a:has-text('{receiver.url}')")
    expect(page.locator("h1")).to_have_text(receiver.url)
    expect(page.locator("#endpoint-summary")).to_contain_text("requests are signed")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("tr.log-row")).to_have_count(7)
    expect(page.locator("tr.log-row").first).to_contain_text("✓ 200")
    shot(page, "endpoint")

    # Toggle and delete on the Endpoints page.
    page.click("nav >> text=Endpoints")
    switch = page.locator("button.switch").first
    switch.click()
    expect(page.locator("button.switch").first).to_have_attribute("aria-checked", "false")
    page.locator("button.switch").first.click()
    expect(page.locator("button.switch").first).to_have_attribute("aria-checked", "true")
    expect(page.locator("#endpoints")).to_contain_text("%")
    shot(page, "endpoints")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete')")
    expect(page.locator("#endpoints tbody tr")).to_have_count(0)


def test_an_endpoints_page_and_its_actions(page, people, receiver, work):
    """Toggle by htmx, a test event (to the Logs filtered to it), expand and resend its
    deliveries, delete after confirming (back to the list): all on the endpoint's page."""
    from playwright.sync_api import expect

    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"], "Orders service")
    sign_in(page, people.alice.email)
    page.click(f"#endpoints a:has-text('{receiver.url}')")
    page.wait_for_url(f"**/endpoints/{e.id}")
    switch = page.locator("#endpoint-summary button.switch")
    test = page.locator("#endpoint-summary button:has-text('Send test event')")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(test).to_be_disabled()  # the summary swapped as a whole
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")

    receiver.respond = [(503, b"busy")]
    test.click()
    page.wait_for_url(f"**/logs?endpoint_id={e.id}")
    work()
    page.goto(f"/endpoints/{e.id}")
    row = page.locator("tr.log-row").first
    expect(row.locator(".outcome")).to_have_text("✕ 503")
    expect(row.locator(".outcome")).to_have_attribute("title", "HTTP 503: not a 2xx response")
    row.click()
    expect(page.locator("tr.detail-row:visible")).to_contain_text("HTTP 503: not a 2xx response")
    receiver.respond = [(200, b"ok")]
    row.locator("button:has-text('Resend')").click()
    expect(page.locator("tr.log-row.fresh")).to_contain_text("✓ 200")

    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#endpoint-summary button:has-text('Delete')")
    page.wait_for_url("**/endpoints")
    assert dialogs and dialogs[0].startswith("Delete the endpoint")
    expect(page.locator(".banner-success")).to_contain_text("Endpoint deleted")
    expect(page.get_by_text("No endpoints yet")).to_be_visible()


def test_support_resends_another_accounts_delivery(page, people, receiver, work):
    from playwright.sync_api import expect

    receiver.respond = [(500, b"nope")]
    e = endpoints.create(people.b.id, receiver.url, ["sms.delivered"], "Beta")
    d = endpoints.send_test(e)
    work()
    for _ in range(3):
        expire_retry_wait()
        work()
    assert db.session.scalar(select(Delivery.status).where(Delivery.id == d.id)) == "failed"

    sign_in(page, people.sam.email)
    page.click("nav >> text=Logs")
    page.select_option("#account-filter", str(people.b.id))
    page.wait_for_url(f"**/logs?account={people.b.id}")
    receiver.respond = [(200, b"ok")]
    page.locator("tr.log-row").first.locator("button:has-text('Resend')").click()
    expect(page.locator("tr.log-row.fresh")).to_contain_text("resend by sam@tnt.test")
    attempt = db.session.scalars(select(Attempt).order_by(Attempt.id.desc())).first()
    assert (attempt.requested_by_id, attempt.trigger, attempt.ok) == (people.sam.id, "manual", True)


def test_htmx_errors_are_shown_not_swallowed(page, people, receiver):
    from playwright.sync_api import expect

    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    sign_in(page, people.alice.email)
    # A stale CSRF token: the toggle is refused and the banner says why.
    page.evaluate("document.body.setAttribute('hx-headers', '{\"X-CSRFToken\": \"stale\"}')")
    page.locator("button.switch").first.click()
    expect(page.locator("#error-banner")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("reload the page")
    db.session.expire_all()
    assert db.session.get(type(e), e.id).enabled


def test_logs_rows_expand_and_fold_from_the_keyboard(page, people, receiver, work):
    """Each row has a real button: Tab reaches it, Enter and Space show and fold the detail,
    and aria-expanded / aria-controls tell assistive technology which row is open."""
    from playwright.sync_api import expect

    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    endpoints.send_test(e, "sms.sent")
    work()
    attempt = db.session.scalars(select(Attempt)).one()
    sign_in(page, people.alice.email)
    page.click("nav >> text=Logs")
    button = page.locator(f"#attempt-{attempt.id} button[data-expand]")
    detail = page.locator(f"#detail-{attempt.id}")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_have_attribute("aria-controls", f"detail-{attempt.id}")
    expect(detail).to_be_hidden()

    page.focus("a:has-text('Reset')")  # the last control before the table
    page.keyboard.press("Tab")
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("X-TalkNTalk-Signature" if e.secret else "X-TalkNTalk-Event")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(button).to_be_focused()
    page.keyboard.press("Space")
    expect(detail).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Space")
    expect(detail).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Enter")
    expect(detail).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")


# Long content: the widest rows support staff meet. -------------------------------------------

LONG_URL = (
    "https://webhooks.logistics-and-freight-holdings.example.co.ke/api/v2/integrations/"
    "talkntalk/sms-status?token=6f1c9a3e7b2d48f0a5c3e9d1b7f24a6c8e0d3b5f7a9c1e2d4f6b8a0c"
)
LONG_REASONS = [
    "HTTP 503: not a 2xx response",
    "Timed out after 10 s",
    "TLS error: certificate verify failed: unable to get local issuer certificate",
    "Refused: 10.0.0.5 is a private-use address",
    "Connection refused",
    "Could not resolve host webhooks.logistics-and-freight-holdings.example.co.ke",
]


def long_content(people):
    """An account with a long name, an endpoint with a long URL and every event, and attempts
    with every kind of long cell: retrying with a next time, manual resends by a long email,
    long transport errors, 9-digit message ids and tests, the longest event name; one delivery
    queued."""
    acct = accounts.create_account("Kenya Commercial Logistics & Freight Holdings Ltd")
    someone = accounts.create_user("someone@long-domain.example", PASSWORD, role="support")
    e = Endpoint(
        account_id=acct.id,
        url=LONG_URL,
        events=" ".join(endpoints.EVENTS),
        description="Freight tracking: SMS status callbacks for the dispatch team",
        secret="whsec_long_content_secret",
    )
    db.session.add(e)
    db.session.commit()
    now = utcnow()
    rows = []
    for i, reason in enumerate(LONG_REASONS):
        event = Event(account_id=acct.id, type="sms.undelivered", body=b"{}", is_test=i % 2 == 1)
        d = Delivery(
            uid=f"long-{i}",
            account_id=acct.id,
            event=event,
            endpoint_id=e.id,
            status="retrying",
            next_attempt_at=now + timedelta(minutes=30),
        )
        db.session.add(d)
        db.session.flush()
        for n, trigger in ((1, "auto"), (2, "manual")):
            rows.append(
                {
                    "delivery_id": d.id,
                    "account_id": acct.id,
                    "endpoint_id": e.id,
                    "event_type": "sms.undelivered",
                    "message_id": 123456789,
                    "mobile": "254712345678",
                    "number": n,
                    "trigger": trigger,
                    "requested_by_id": someone.id if trigger == "manual" else None,
                    "started_at": now - timedelta(minutes=10 * i + n),
                    "duration_ms": 10000,
                    "ok": False,
                    "status_code": 503 if reason.startswith("HTTP") else None,
                    "response_body": "",
                    "error": reason,
                }
            )
    queued = Event(account_id=acct.id, type="sms.undelivered", body=b"{}", is_test=True)
    db.session.add(
        Delivery(
            uid="long-queued",
            account_id=acct.id,
            event=queued,
            endpoint_id=e.id,
            status="pending",
            next_attempt_at=now,
        )
    )
    db.session.commit()
    db.session.execute(insert(Attempt), rows)
    db.session.commit()
    return e


CLIPPED = """() => {
  const out = [];
  for (const wrap of document.querySelectorAll('.table-wrap'))
    if (wrap.scrollWidth > wrap.clientWidth)
      out.push(`table wider than its card: ${wrap.scrollWidth} > ${wrap.clientWidth}`);
  for (const tr of document.querySelectorAll('table tr')) {
    if (!tr.getClientRects().length) continue;  // hidden (a detail row not yet opened)
    const name = tr.id || tr.className || 'header';
    if (tr.scrollWidth > tr.clientWidth)
      out.push(`${name}: ${tr.scrollWidth} > ${tr.clientWidth}`);
    for (const td of tr.cells)
      if (td.scrollWidth > td.clientWidth)
        out.push(`${name}, ${td.dataset.label || td.textContent.trim()}: cut off`);
  }
  // A value shortened on purpose (an ellipsis) has its whole text in its title.
  for (const el of document.querySelectorAll('.clip'))
    if (el.scrollWidth > el.clientWidth && !el.title.includes(el.textContent.trim()))
      out.push(`${el.textContent.trim()}: cut off, and not whole in its title`);
  return out;
}"""

WRAPPED = """() => {
  // Log rows keep to one line: no cell's content is taller than 1.6 of its lines.
  const out = [];
  for (const td of document.querySelectorAll('tr.log-row > td')) {
    if (!td.getClientRects().length) continue;  // a column hidden on this page
    const range = document.createRange();
    range.selectNodeContents(td);
    if (range.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(td).lineHeight))
      out.push(`${td.parentElement.id}, ${td.dataset.label}: ${td.innerText.trim()}`);
  }
  return out;
}"""

SIDEWAYS = """() => {
  const doc = document.documentElement, wrap = document.querySelector('.table-wrap');
  const wider = wrap.scrollWidth > wrap.clientWidth;
  wrap.scrollLeft = 100;
  return {page: doc.scrollWidth - doc.clientWidth, table_scrolls: wider && wrap.scrollLeft > 0};
}"""


def test_no_cell_is_cut_off_at_1360_px_for_support_staff(page, people):
    """Support staff see the Account column too; with the longest realistic content, every
    table fits its card at 1360 px, no cell is cut off, and log rows keep to one line. The
    account's own users (no Account column, so longer values shown) too."""
    e = long_content(people)
    accounts.create_user("ops@freight.example", PASSWORD, account_id=e.account_id)
    for email in (people.sam.email, "ops@freight.example"):
        sign_in(page, email)
        for path in ("/logs", "/logs?status=pending", "/endpoints", f"/endpoints/{e.id}"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate(CLIPPED) == [], (email, path)
            assert page.evaluate(WRAPPED) == [], (email, path)
        page.click("button:has-text('Sign out')")


def test_narrower_screens_scroll_a_table_inside_its_card_never_the_page(page, people):
    e = long_content(people)
    sign_in(page, people.sam.email)
    paths = ("/logs", "/logs?status=pending", "/endpoints", f"/endpoints/{e.id}")
    for width, table_scrolls in ((800, True), (400, False)):  # 400: a phone, rows as cards
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate(SIDEWAYS) == {"page": 0, "table_scrolls": table_scrolls}, (
                width,
                path,
            )


def test_the_edit_form_reveals_keeps_and_clears_a_secret(page, people, receiver):
    from playwright.sync_api import expect

    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"], secret="whsec_browser_secret")
    sign_in(page, people.alice.email)
    page.goto(f"/endpoints/{e.id}/edit")
    assert "whsec_browser_secret" not in page.content()
    page.fill("#description", "kept")
    page.click("button:has-text('Save endpoint')")
    page.wait_for_url(f"**/endpoints/{e.id}")
    db.session.refresh(e)
    assert (e.description, e.secret) == ("kept", "whsec_browser_secret")

    page.goto(f"/endpoints/{e.id}/edit")
    page.click("#secret-field button:has-text('Reveal')")
    expect(page.locator("#secret")).to_have_value("whsec_browser_secret")
    expect(page.locator("#secret")).to_have_attribute("type", "text")
    page.click("[data-secret=clear]")
    page.click("button:has-text('Save endpoint')")
    page.wait_for_url(f"**/endpoints/{e.id}")
    db.session.refresh(e)
    assert e.secret is None


def test_inspector_first_verified_webhook_and_a_retry_a_minute_later(page, people, work):
    """The issue's path: create an inspector and add it as an endpoint, send a test SMS from the
    Messages page (another tab), watch sms.sent and sms.delivered arrive verified without a
    reload, set "fail the first 1" and see the retry land one minute later."""
    from freezegun import freeze_time
    from playwright.sync_api import expect

    sign_in(page, people.alice.email)
    page.click("nav >> text=Inspector")
    page.fill("#name", "first webhook")
    page.click("button:has-text('Create inspector and add it as an endpoint')")
    expect(page.locator("#inspector-endpoint")).to_contain_text("signed")
    capture_url = page.input_value("#capture-url")
    assert "/in/" in capture_url
    captures = page.locator("#captures article.capture")
    expect(captures).to_have_count(0)
    expect(page.locator(".captures-empty")).to_be_visible()

    # Another tab sends a test SMS; this one is never reloaded.
    messages = page.context.new_page()
    messages.goto(page.url)
    messages.click("text=send a test SMS")
    messages.fill("#mobile", "0712345678")
    messages.fill("#message", "Your OTP is 847291.")
    messages.select_option("#simulate", "delivered")
    messages.click("button:has-text('Send test SMS')")
    expect(messages.locator(".banner-success")).to_contain_text("queued")
    work()
    work()
    expect(captures).to_have_count(2)
    expect(captures.nth(0)).to_contain_text("sms.delivered")
    expect(captures.nth(1)).to_contain_text("sms.sent")
    for n in (0, 1):
        expect(captures.nth(n)).to_contain_text("✓ signature verified")
        expect(captures.nth(n)).to_contain_text("answered 200")
    expect(page.locator(".captures-empty")).to_be_hidden()
    expect(captures.nth(0).locator("pre.capture-body").first).to_contain_text(
        '"event": "sms.delivered"'
    )
    shot(page, "inspector")

    # Replay as curl, to a URL typed in.
    first = captures.nth(0)
    first.locator("summary:has-text('Replay with curl')").click()
    first.locator("input[name=url]").fill("https://my-tunnel.example/hooks")
    first.locator("button:has-text('Make curl command')").click()
    expect(first.locator("pre.curl-command")).to_contain_text("https://my-tunnel.example/hooks")
    expect(first.locator("pre.curl-command")).to_contain_text("--data-binary @-")

    # Fail the first 1: the next sms.sent is answered 500 and retried a minute later.
    page.fill("#mock-fail_first", "1")
    page.click("button:has-text('Save answer')")
    expect(page.locator("#mock-form .banner-success")).to_contain_text("Saved")
    messages.fill("#mobile", "0712345678")
    messages.fill("#message", "Second OTP 112233.")
    messages.select_option("#simulate", "delivered")
    messages.click("button:has-text('Send test SMS')")
    expect(messages.locator(".banner-success")).to_contain_text("queued")
    t0 = utcnow()
    with freeze_time(t0):
        work()
        work()
    expect(captures).to_have_count(4)
    failed = page.locator("article.capture:has-text('answered 500')")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("sms.sent")
    with freeze_time(t0 + timedelta(seconds=59)):
        work()
    expect(captures).to_have_count(4)  # not yet
    with freeze_time(t0 + timedelta(seconds=61)):
        work()
    expect(captures).to_have_count(5)
    retry = captures.nth(0)
    expect(retry).to_contain_text("sms.sent")
    expect(retry).to_contain_text("seen before: retry of sms.sent")
    expect(retry).to_contain_text("✓ signature verified")
    expect(retry).to_contain_text("answered 200")

    # The Logs show the failed attempt and the successful retry.
    messages.click("nav >> text=Logs")
    rows = messages.locator("tr.log-row")
    expect(rows.first).to_contain_text("#2")
    expect(rows.first).to_contain_text("delivered")
    expect(messages.locator("tr.log-row:has-text('500')")).to_have_count(1)
    messages.close()
