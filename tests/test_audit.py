"""tnt.audit: every change is recorded with who, when and from where, in the change's own
transaction; customers read their account's trail, support every account's (page and API)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import event, select
from web_fixtures import PASSWORD, browser_sign_in, shot, sign_in

from tnt import apikeys, audit, endpoints
from tnt.audit import Action
from tnt.extensions import db
from tnt.models import AuditEntry, Delivery
from tnt.scope import Scope

SECRET = "whsec_never_in_the_trail"


def trail(account_id=None) -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).order_by(AuditEntry.id)
    if account_id is not None:
        query = query.where(AuditEntry.account_id == account_id)
    return list(db.session.scalars(query))


def actions(account_id=None) -> list[str]:
    return [e.action for e in trail(account_id)]


def no_secret_anywhere():
    dump = json.dumps([[e.actor, e.details] for e in trail()])
    assert SECRET not in dump and "whsec_" not in dump


def test_an_endpoints_life_in_the_dashboard(people, receiver, signed_in, work):
    # Sessions carry their time: the whole visit happens at the frozen moment.
    with freeze_time("2026-05-20 08:30:04"):
        alice = signed_in(people.alice, REMOTE_ADDR="203.0.113.5")
        resp = alice.post(
            "/endpoints/new",
            data={"url": receiver.url, "events": ["sms.sent"], "secret": SECRET},
        )
        assert resp.status_code == 302
        (e,) = endpoints.list_for(Scope.account(people.a.id))
        assert alice.get(f"/endpoints/{e.id}/edit").status_code == 200  # no secret in it
        assert SECRET in alice.post(f"/endpoints/{e.id}/secret").get_data(as_text=True)
        alice.post(
            f"/endpoints/{e.id}/edit",
            data={"url": receiver.url + "/v2", "events": ["sms.sent", "sms.failed"], "secret": ""},
        )
        alice.post(f"/endpoints/{e.id}/toggle")
        alice.post(f"/endpoints/{e.id}/toggle")
        alice.post(f"/endpoints/{e.id}/test", data={"event": "sms.sent"})
        alice.post(f"/endpoints/{e.id}/delete")

    entries = [x for x in trail(people.a.id) if x.action != Action.SIGN_IN]
    assert [x.action for x in entries] == [
        Action.ENDPOINT_CREATE,
        Action.ENDPOINT_SECRET_REVEAL,
        Action.ENDPOINT_EDIT,
        Action.ENDPOINT_DISABLE,
        Action.ENDPOINT_ENABLE,
        Action.ENDPOINT_TEST,
        Action.ENDPOINT_DELETE,
    ]
    created, _shown, edited, *_ = entries
    assert str(created.at) == "2026-05-20 08:30:04"
    assert {(x.actor, x.actor_type, x.user_id, x.address) for x in entries} == {
        ("alice@acme.test", "user", people.alice.id, "203.0.113.5")
    }
    assert {(x.target_type, x.target_id) for x in entries} == {("endpoint", e.id)}
    assert created.details["signed"] is True and created.details["url"] == receiver.url
    assert edited.details == {
        "changed": ["url", "events", "secret"],
        "url": {"before": receiver.url, "after": receiver.url + "/v2"},
        "events": {"before": ["sms.sent"], "after": ["sms.sent", "sms.failed"]},
        "secret": "removed",
    }
    test_entry = entries[5]
    assert db.session.get(Delivery, test_entry.details["delivery_id"]).endpoint_id == e.id
    no_secret_anywhere()


def test_saving_an_unchanged_form_records_nothing_and_support_sees_no_secret(
    people, receiver, signed_in
):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"], "", SECRET)
    sam = signed_in(people.sam)
    assert sam.get(f"/endpoints/{e.id}/edit").status_code == 200  # support: no secret in it
    sam.post(f"/endpoints/{e.id}/edit", data={"url": e.url, "events": ["sms.sent"]})
    assert actions(people.a.id) == [Action.ENDPOINT_CREATE]
    assert trail(people.a.id)[0].actor == "cli"  # made outside a request


def test_api_changes_name_the_key(people, receiver, client):
    key, raw = apikeys.create(people.a.id, "billing")
    api = {"Authorization": f"Bearer {raw}"}
    resp = client.post(
        "/api/v1/endpoints", json={"url": receiver.url, "secret": SECRET}, headers=api
    )
    eid = resp.get_json()["id"]
    client.post(f"/api/v1/endpoints/{eid}/secret/rotate", headers=api)
    client.put(f"/api/v1/endpoints/{eid}/secret", json={"secret": SECRET + "2"}, headers=api)
    client.delete(f"/api/v1/endpoints/{eid}/secret", headers=api)
    client.delete(f"/api/v1/endpoints/{eid}/secret", headers=api)  # nothing left to clear
    client.post(f"/api/v1/endpoints/{eid}/disable", headers=api)
    client.post(f"/api/v1/endpoints/{eid}/disable", headers=api)  # already: no change
    client.post(f"/api/v1/endpoints/{eid}/enable", headers=api)
    client.post(f"/api/v1/endpoints/{eid}/test", headers=api)
    d = db.session.scalars(select(Delivery)).one()
    d.status = "failed"
    db.session.commit()
    assert client.post(f"/api/v1/deliveries/{d.id}/resend", headers=api).status_code == 200
    db.session.get(Delivery, d.id).status = "failed"
    db.session.commit()
    resp = client.post("/api/v1/deliveries/resend", json={"endpoint_id": eid}, headers=api)
    assert resp.get_json() == {"queued": 1}
    client.delete(f"/api/v1/endpoints/{eid}", headers=api)

    entries = trail(people.a.id)
    assert [x.action for x in entries] == [
        Action.API_KEY_CREATE,
        Action.ENDPOINT_CREATE,
        Action.ENDPOINT_SECRET_ROTATE,
        Action.ENDPOINT_EDIT,
        Action.ENDPOINT_SECRET_CLEAR,
        Action.ENDPOINT_DISABLE,
        Action.ENDPOINT_ENABLE,
        Action.ENDPOINT_TEST,
        Action.DELIVERY_RESEND,
        Action.DELIVERY_BULK_RESEND,
        Action.ENDPOINT_DELETE,
    ]
    label = f"API key billing ({key.prefix}…)"
    assert {(x.actor, x.actor_type, x.api_key_id) for x in entries[1:]} == {
        (label, "api_key", key.id)
    }
    assert entries[3].details == {
        "changed": ["secret"],
        "url": {"before": receiver.url, "after": receiver.url},
        "secret": "replaced",
    }
    assert entries[8].target_type == "delivery" and entries[8].target_id == d.id
    assert entries[9].details == {"queued": 1, "filters": {"endpoint_id": eid}}
    # The label still reads right after the key is revoked.
    apikeys.revoke(Scope.account(people.a.id), key.id)
    assert trail(people.a.id)[1].actor == label
    no_secret_anywhere()


def test_api_keys_in_the_dashboard_and_the_cli(people, signed_in, runner):
    alice = signed_in(people.alice)
    assert alice.post("/api-keys", data={"name": "deploys"}).status_code == 201
    (key,) = apikeys.list_for(Scope.account(people.a.id))
    alice.post(f"/api-keys/{key.id}/revoke")
    alice.post(f"/api-keys/{key.id}/revoke")  # revoking twice changes nothing
    result = runner.invoke(args=["tnt", "api-key", "create", "--account", "Acme", "--name", "ops"])
    assert result.exit_code == 0, result.output
    entries = [x for x in trail(people.a.id) if x.action != Action.SIGN_IN]
    assert [(x.action, x.actor, x.details["name"]) for x in entries] == [
        (Action.API_KEY_CREATE, "alice@acme.test", "deploys"),
        (Action.API_KEY_REVOKE, "alice@acme.test", "deploys"),
        (Action.API_KEY_CREATE, "cli", "ops"),
    ]
    assert all(x.details["prefix"].startswith("tnt_") for x in entries)


def test_a_single_resend_in_the_dashboard(people, receiver, signed_in):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    d = endpoints.send_test(e, "sms.sent")
    d.status = "failed"
    db.session.commit()
    sam = signed_in(people.sam)
    assert sam.post(f"/logs/deliveries/{d.id}/resend").status_code == 302
    entry = trail(people.a.id)[-1]
    assert (entry.action, entry.actor, entry.target_id) == (
        Action.DELIVERY_RESEND,
        "sam@tnt.test (support)",
        d.id,
    )
    assert entry.details == {"endpoint_id": e.id, "ok": True}


def test_sign_ins_and_failed_sign_ins(app, people):
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = False
    assert sign_in(client, "alice@acme.test", "wrong-password").status_code == 401
    assert sign_in(client, "nobody@acme.test", "wrong-password").status_code == 401
    assert sign_in(client, "ALICE@acme.test", PASSWORD).status_code == 302
    assert sign_in(app.test_client(), people.sam.email).status_code == 302
    failed, ok = trail(people.a.id)
    assert (failed.action, failed.actor, failed.actor_type, failed.user_id) == (
        Action.SIGN_IN_FAILED,
        "not signed in",
        "visitor",
        None,
    )
    assert failed.details == {"email": "alice@acme.test"} and failed.target_id == people.alice.id
    assert (ok.action, ok.actor, ok.user_id) == (Action.SIGN_IN, "alice@acme.test", people.alice.id)
    # Support staff have no account; nor has an unknown email, whose failure only they see.
    unknown, support = [x for x in trail() if x.account_id is None]
    assert (unknown.action, unknown.details) == (
        Action.SIGN_IN_FAILED,
        {"email": "nobody@acme.test"},
    )
    assert unknown.target_id is None
    assert support.actor == "sam@tnt.test (support)"
    assert len(trail()) == 4


def test_the_entry_commits_and_rolls_back_with_its_change(people, receiver):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])

    def refuse(session):
        raise RuntimeError("the database refused the commit")

    event.listen(db.session, "before_commit", refuse)
    try:
        with pytest.raises(RuntimeError):
            endpoints.set_enabled(e, False)
    finally:
        event.remove(db.session, "before_commit", refuse)
    db.session.rollback()
    assert db.session.get(type(e), e.id).enabled is True
    assert actions(people.a.id) == [Action.ENDPOINT_CREATE]  # no trace of what did not happen
    endpoints.set_enabled(e, False)
    assert actions(people.a.id) == [Action.ENDPOINT_CREATE, Action.ENDPOINT_DISABLE]


def test_a_change_that_fails_leaves_no_entry(people, receiver):
    e = endpoints.create(people.a.id, receiver.url, ["sms.sent"])
    with pytest.raises(Exception, match="url"):
        endpoints.update(e, "ftp://nope", ["sms.sent"])
    db.session.rollback()
    assert actions(people.a.id) == [Action.ENDPOINT_CREATE]


def test_the_address_behind_a_proxy(app, people):
    from tnt import create_app

    proxied = create_app(
        {k: app.config[k] for k in ("TESTING", "SQLALCHEMY_DATABASE_URI", "REDIS_URL")}
        | {"SECRET_KEY": "test", "WTF_CSRF_ENABLED": False, "TNT_PROXY_HOPS": 1}
    )
    client = proxied.test_client()
    client.post(
        "/login",
        data={"email": people.alice.email, "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.77"},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert trail(people.a.id)[-1].address == "198.51.100.77"


# --- reading the trail ---------------------------------------------------------------------


def many(account_id: int, n: int) -> None:
    for i in range(n):
        audit.record(Action.ENDPOINT_TEST, account_id, details={"n": i}, actor=audit.Actor.cli())
    db.session.commit()


def test_the_audit_page_shows_the_accounts_own_entries_and_pages(people, signed_in):
    many(people.a.id, 55)
    many(people.b.id, 1)
    alice = signed_in(people.alice)
    page = alice.get("/audit").get_data(as_text=True)
    assert page.count('<tr id="audit-') == 50 and 'aria-current="page">Audit' in page
    # Newest first: alice's sign-in, then entries 54 down to 6.
    assert "n:</span> 54<" in page and "n:</span> 6<" in page and "n:</span> 5<" not in page
    ids = [x.id for x in trail(people.a.id) if x.action == Action.ENDPOINT_TEST]
    more = f"/audit/rows?before={ids[6]}"
    assert more in page
    rest = alice.get(more, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert rest.count('<tr id="audit-') == 6 and "n:</span> 0<" in rest
    assert "Load more" not in rest
    bob_id = trail(people.b.id)[0].id
    assert f'id="audit-{bob_id}"' not in page + rest
    assert "Account" not in page.split("<thead>")[1].split("</thead>")[0]  # no support column


def test_support_sees_every_account_or_the_one_chosen(people, signed_in):
    many(people.a.id, 1)
    many(people.b.id, 1)
    sam = signed_in(people.sam)
    everything = sam.get("/audit").get_data(as_text=True)
    a_entry, b_entry = trail(people.a.id)[0], trail(people.b.id)[0]
    assert f'id="audit-{a_entry.id}"' in everything and f'id="audit-{b_entry.id}"' in everything
    assert ">Acme</a>" in everything and ">Beta</a>" in everything
    just_b = sam.get(f"/audit?account={people.b.id}").get_data(as_text=True)
    assert f'id="audit-{a_entry.id}"' not in just_b and f'id="audit-{b_entry.id}"' in just_b
    assert f'<option value="{people.b.id}" selected>' in just_b  # the account bar
    # Customers cannot widen their scope with ?account=.
    alice = signed_in(people.alice)
    assert f'id="audit-{b_entry.id}"' not in alice.get(f"/audit?account={people.b.id}").text


@pytest.mark.parametrize(
    ("query", "status"),
    [("account=abc", 400), ("account=999999", 404), ("account=99999999999999999999", 404)],
)
def test_a_bad_account_filter_is_a_4xx(people, signed_in, query, status):
    resp = signed_in(people.sam).get(f"/audit?{query}")
    assert resp.status_code == status


@pytest.mark.parametrize("before", ["abc", "-1", "1" * 30, "5_5"])
def test_a_bad_cursor_is_a_400(people, signed_in, before):
    alice = signed_in(people.alice)
    assert alice.get(f"/audit/rows?before={before}").status_code == 400
    assert alice.get(f"/audit?before={before}").status_code == 400
    assert alice.get(f"/audit/rows?before={2**31 + 5}").status_code == 200  # past every id


def test_the_api_lists_the_keys_account_newest_first_with_a_cursor(people, client):
    many(people.a.id, 3)
    many(people.b.id, 2)
    _key, raw = apikeys.create(people.a.id, "reader")
    api = {"Authorization": f"Bearer {raw}"}
    first = client.get("/api/v1/audit?limit=2", headers=api).get_json()
    assert [x["action"] for x in first["data"]] == ["api_key.create", "endpoint.test"]
    assert first["data"][0]["actor"] == "cli" and first["data"][0]["details"]["name"] == "reader"
    assert set(first["data"][0]) == {
        "id",
        "at",
        "action",
        "actor",
        "actor_type",
        "address",
        "target_type",
        "target_id",
        "details",
    }
    rest = client.get(f"/api/v1/audit?cursor={first['next_cursor']}", headers=api).get_json()
    assert [x["details"]["n"] for x in rest["data"]] == [1, 0]
    assert rest["next_cursor"] is None
    assert {x["id"] for x in first["data"] + rest["data"]} == {x.id for x in trail(people.a.id)}


def test_the_api_names_a_bad_cursor(people, client):
    api = {"Authorization": f"Bearer {apikeys.create(people.a.id, 'reader')[1]}"}
    resp = client.get("/api/v1/audit?cursor=abc", headers=api)
    assert resp.status_code == 422
    assert set(resp.get_json()["error"]["fields"]) == {"cursor"}
    resp = client.get("/api/v1/audit?account=2", headers=api)
    assert resp.status_code == 422 and "account" in resp.get_json()["error"]["fields"]
    assert client.get("/api/v1/audit").status_code == 401


def test_the_audit_page_in_a_browser_under_the_csp(page, people):
    many(people.a.id, 51)
    browser_sign_in(page, people.alice.email)
    page.click("nav >> text=Audit")
    page.wait_for_url("**/audit")
    assert page.locator("#audit tbody tr[id^=audit-]").count() == 50
    page.click("text=Load more")
    page.locator("#audit-more").wait_for(state="detached")
    assert page.locator("#audit tbody tr[id^=audit-]").count() == 52  # 51 and the sign-in


def test_inspectors_in_the_trail(people, signed_in):
    from tnt import inspectors

    alice = signed_in(people.alice)
    assert alice.post("/inspectors", data={"name": "try"}).status_code == 302
    (inspector,) = inspectors.list_for(Scope.account(people.a.id))
    first = inspector.id
    form = {"status_code": "503", "delay": "0", "fail_first": "1", "body": "down"}
    assert alice.post(f"/inspectors/{inspector.id}/mock", data=form).status_code in (200, 302)
    alice.post(f"/inspectors/{inspector.id}/delete")
    with freeze_time(datetime.now(UTC) + timedelta(days=8)):
        gone = inspectors.create(people.a.id, "old", add_endpoint=True).id
    with freeze_time(datetime.now(UTC) + timedelta(days=16)):
        inspectors.purge_expired()  # the worker's sweep: the service itself acted
    entries = [x for x in trail(people.a.id) if x.action.startswith("inspector.")]
    (ended,) = [x for x in trail(people.a.id) if x.action == Action.ENDPOINT_DELETE]
    assert ended.actor == "system"  # the expired inspector's endpoint went with it
    assert [(x.action, x.actor, x.target_id) for x in entries] == [
        (Action.INSPECTOR_CREATE, "alice@acme.test", first),
        (Action.INSPECTOR_ANSWER, "alice@acme.test", first),
        (Action.INSPECTOR_DELETE, "alice@acme.test", first),
        (Action.INSPECTOR_CREATE, "cli", gone),
        (Action.INSPECTOR_DELETE, "system", gone),
    ]
    assert entries[1].details == {
        "status_code": 503,
        "delay_ms": 0,
        "fail_first": 1,
        "body": "4 bytes",
    }
    assert entries[-1].details == {"reason": "expired"}


def test_support_reads_a_customers_trail_in_a_browser(page, people, receiver, signed_in):
    from playwright.sync_api import expect

    alice = signed_in(people.alice, REMOTE_ADDR="203.0.113.5")
    form = {"url": receiver.url, "events": ["sms.sent"], "secret": SECRET, "description": "CRM"}
    alice.post("/endpoints/new", data=form)
    (e,) = endpoints.list_for(Scope.account(people.a.id))
    alice.post(f"/endpoints/{e.id}/secret")
    alice.post(f"/endpoints/{e.id}/test", data={"event": "sms.sent"})
    apikeys.create(people.a.id, "billing")
    sam = signed_in(people.sam, REMOTE_ADDR="198.51.100.7")
    moved = {**form, "url": receiver.url + "/v2", "secret_kept": "1", "secret": ""}
    assert sam.post(f"/endpoints/{e.id}/edit?account={people.a.id}", data=moved).status_code == 302

    browser_sign_in(page, people.sam.email)
    page.goto(f"/audit?account={people.a.id}")
    newest = page.locator("#audit tbody tr").first
    expect(newest).to_contain_text("Endpoint edited")
    expect(newest).to_contain_text("sam@tnt.test (support)")
    expect(newest).to_contain_text(f"{receiver.url} → {receiver.url}/v2")
    expect(page.locator("#audit")).to_contain_text("Signing secret shown")
    expect(page.locator("#audit")).not_to_contain_text(SECRET)
    assert page.eval_on_selector("main", "m => m.scrollWidth <= m.clientWidth")  # no overflow
    shot(page, "audit")
