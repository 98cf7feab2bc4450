"""End to end in a real browser: Debian's chromium driven by Playwright, the real app served
over HTTP, a real RQ worker on real Redis and a real receiving server."""
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from web_fixtures import browser_sign_in as sign_in

from tnt import delivery, endpoints
from tnt.clock import utcnow
from tnt.extensions import db
from tnt.models import Attempt, Delivery

# Screenshots go to a temporary folder; `TNT_SCREENSHOTS_DIR=docs/screenshots make test`
# refreshes the README's pictures.
SHOTS = Path(os.environ.get("TNT_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "tnt-shots")


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret would inject a <style>, which the CSP (rightly) blocks.
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, caret="initial")


def expire_retry_wait():
    """Move the retry's due time into the past (as if the wait passed) and let the sweeper see it."""
    db.session.execute(update(Delivery).where(Delivery.status == "retrying")
                       .values(next_attempt_at=utcnow() - timedelta(seconds=30)))
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


def test_support_reads_the_system_page(page, people, receiver, work):
    from playwright.sync_api import expect

    endpoints.create(people.b.id, "http://127.0.0.1:9/refused", ["sms.delivered"], "Beta")
    endpoints.send_test(endpoints.list_for(people.b.id)[0])
    work()
    sign_in(page, people.sam.email)
    page.click("nav >> text=System")
    expect(page.locator("#backlog")).to_contain_text("Retrying")
    expect(page.locator("#failing")).to_contain_text("Beta")
    expect(page.locator("#failing")).to_contain_text("Connection refused")
    expect(page.locator("svg.chart")).to_be_visible()
    shot(page, "system")


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
