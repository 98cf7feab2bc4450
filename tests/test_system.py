"""Operations: /metrics in Prometheus' format (scraped and parsed) and the System page."""

from prometheus_client.parser import text_string_to_metric_families
from web_fixtures import browser_sign_in, shot, sign_in
from workers import wait_until

from tnt import endpoints, messages, queue

TOKEN = "metrics-token-for-tests"


def scrape(client) -> dict:
    """{(sample name, labels as a sorted tuple): value}."""
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for s in family.samples
    }


def test_metrics_need_the_token_and_are_off_without_one(app, client):
    assert client.get("/metrics").status_code == 404  # TNT_METRICS_TOKEN unset: off
    app.config["TNT_METRICS_TOKEN"] = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_metrics_count_deliveries_durations_backlog_and_disabled_endpoints(
    app, client, account, receiver, work
):
    app.config["TNT_METRICS_TOKEN"] = TOKEN
    endpoints.create(account.id, receiver.url, ["sms.sent", "sms.delivered"])
    endpoints.create(account.id, "http://127.0.0.1:9/refused", ["sms.sent"])
    off = endpoints.create(account.id, receiver.url, ["sms.sent"])
    endpoints.set_enabled(off, False)
    for _ in range(3):
        messages.send_sms(account.id, "0712345678", "ACME", "hi", simulate="delivered")
    work()
    work()
    m = scrape(client)
    sent = sum(
        v
        for (name, labels), v in m.items()
        if name == "tnt_deliveries_total" and ("event", "sms.sent") in labels
    )
    delivered = m[("tnt_deliveries_total", (("event", "sms.delivered"), ("outcome", "delivered")))]
    assert sent == 6 and delivered == 3  # 3 messages x (2 endpoints for sent, 1 for delivered)
    assert m[("tnt_attempt_duration_seconds_count", ())] == 9
    assert m[("tnt_attempt_duration_seconds_bucket", (("le", "+Inf"),))] == 9
    retrying = m[("tnt_backlog_deliveries", (("status", "retrying"),))]
    assert (
        retrying
        == m.get(("tnt_deliveries_total", (("event", "sms.sent"), ("outcome", "retrying"))), 0)
        == 3
    )
    assert m[("tnt_due_deliveries", ())] == 0  # the retries are a minute away
    assert m[("tnt_endpoints_disabled", ())] == 1


def test_metrics_show_each_running_workers_heartbeat(app, client, spawn):
    app.config["TNT_METRICS_TOKEN"] = TOKEN
    worker = spawn("beating")
    wait_until(
        lambda: any(name == "tnt_worker_heartbeat_timestamp_seconds" for name, _ in scrape(client)),
        20,
        "a heartbeat",
        [worker],
    )
    (labels,) = [
        dict(labels)
        for name, labels in scrape(client)
        if name == "tnt_worker_heartbeat_timestamp_seconds"
    ]
    assert labels["host"] and labels["worker"]


def test_the_system_page_is_for_support_staff(app, people, client, receiver, work):
    e = endpoints.create(people.b.id, receiver.url, ["sms.sent"])
    receiver.respond = [(503, b"down")]
    messages.send_sms(people.b.id, "0712345678", "BETA", "hi", simulate="delivered")
    work()
    app.config["WTF_CSRF_ENABLED"] = False  # the forms' CSRF is tested in test_security.py
    assert sign_in(client, people.alice.email).status_code == 302
    assert client.get("/system").status_code == 404
    client.post("/logout")
    sign_in(client, people.sam.email)
    page = client.get("/system").get_data(as_text=True)
    assert "Backlog" in page and "Deliveries per minute" in page
    failing = page[page.index('id="failing"') :]
    assert "Beta" in failing and e.url in failing and "HTTP 503" in failing
    assert 'href="/system"' in client.get("/endpoints").get_data(as_text=True)
    assert queue.redis().ping()


def test_the_system_page_in_a_browser(page, people, receiver, work, spawn):
    from playwright.sync_api import expect

    good = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    for _ in range(3):
        messages.send_sms(people.a.id, "0712345678", "ACME", "hi")
    work()
    endpoints.create(people.b.id, receiver.url, ["sms.sent"])
    receiver.respond = [(503, b"down")]
    messages.send_sms(people.b.id, "0712345678", "BETA", "hi")
    work()
    worker = spawn("beating")
    browser_sign_in(page, people.sam.email)
    page.click("nav >> text=System")
    expect(page.locator("#backlog")).to_contain_text("Retrying")
    # The worker's first heartbeat lands within a moment of its start.
    wait_until(
        lambda: page.reload() and "1 alive" in page.inner_text("#workers"), 20, "a worker", [worker]
    )
    failing = page.locator("#failing")
    expect(failing).to_contain_text("Beta")
    expect(failing).to_contain_text("HTTP 503")
    expect(failing).not_to_contain_text("Acme")  # its endpoint answered 200
    assert good.account_id == people.a.id
    heights = page.eval_on_selector_all(
        "svg.chart rect.bar-ok", "rs => rs.map(r => parseFloat(r.getAttribute('height')))"
    )
    assert len(heights) == 60 and max(heights) > 0  # this minute's successes are drawn
    assert page.eval_on_selector("main", "m => m.scrollWidth <= m.clientWidth")  # no overflow
    shot(page, "system")
