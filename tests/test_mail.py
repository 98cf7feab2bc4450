"""tnt.mail: support staff changing an endpoint's URL emails the account's users, from an RQ job
after commit, through a real local SMTP server; without one, the worker logs it."""

import logging

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from tnt import accounts, apikeys, endpoints
from tnt.audit import Action
from tnt.config import from_env
from tnt.extensions import db
from tnt.mail import SmtpServer
from tnt.models import AuditEntry


@pytest.fixture
def hook(people, receiver):
    return endpoints.create(people.a.id, receiver.url, ["sms.sent"], "Acme hook", "whsec_acme_1234")


def edit_url(client, endpoint, url):
    resp = client.post(
        f"/endpoints/{endpoint.id}/edit",
        data={"url": url, "events": endpoint.event_list, "description": endpoint.description},
    )
    assert resp.status_code == 302 and "/login" not in resp.location, resp.location


def the_edit() -> AuditEntry:
    db.session.expire_all()
    return db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == Action.ENDPOINT_EDIT)
    ).one()


def test_support_changing_a_url_emails_the_accounts_users_after_commit(
    app, people, hook, receiver, signed_in, mailbox, work
):
    carol = accounts.create_user("carol@acme.test", "correct-horse-2", account_id=people.a.id)
    old, new = hook.url, receiver.url + "/moved"
    with freeze_time("2026-05-20 08:30:04"):  # sessions are signed with the time: sign in too
        edit_url(signed_in(people.sam, REMOTE_ADDR="198.51.100.4"), hook, new)
    # Nothing is sent inside the request: the entry says the notice is queued.
    assert mailbox.received() == []
    assert the_edit().details["notice"] == "queued"

    work()

    ((rcpt, message),) = mailbox.received()
    assert sorted(rcpt) == sorted([people.alice.email, carol.email])  # not bob, not support
    body = message.get_content().replace("\r\n", "\n")
    assert f"Old URL:    {old}\n" in body and f"New URL:    {new}\n" in body
    assert "Changed by: sam@tnt.test (support)" in body
    assert "When:       2026-05-20T11:30:04+03:00" in body  # Nairobi time
    assert "whsec_acme_1234" not in message.as_string()
    assert message["From"] == app.config["TNT_MAIL_FROM"]
    entry = the_edit()
    assert entry.details["notified"] is True
    assert entry.details["recipients"] == [people.alice.email, carol.email]
    assert entry.details["url"] == {"before": old, "after": new}
    assert entry.actor == "sam@tnt.test (support)" and entry.address == "198.51.100.4"


def test_the_accounts_own_users_and_api_keys_change_urls_without_a_notice(
    people, hook, receiver, signed_in, mailbox, work, client
):
    edit_url(signed_in(people.alice), hook, receiver.url + "/mine")
    key_raw = apikeys.create(people.a.id, "ci")[1]
    resp = client.patch(
        f"/api/v1/endpoints/{hook.id}",
        json={"url": receiver.url + "/by-key"},
        headers={"Authorization": f"Bearer {key_raw}"},
    )
    assert resp.status_code == 200
    work()
    assert mailbox.received() == []
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == Action.ENDPOINT_EDIT)
    ).all()
    assert [e.actor_type for e in entries] == ["user", "api_key"]
    assert all("notice" not in e.details and "notified" not in e.details for e in entries)


@pytest.mark.parametrize("mailbox", [("mailer", "p@ss w0rd")], indirect=True)
def test_a_server_that_wants_a_login_gets_the_urls_credentials(
    app, people, hook, receiver, signed_in, mailbox, work
):
    assert "mailer:p@ss w0rd@" in mailbox.url
    app.config["TNT_SMTP_URL"] = mailbox.url.replace("p@ss w0rd", "p%40ss%20w0rd")  # URL-quoted
    edit_url(signed_in(people.sam), hook, receiver.url + "/moved")
    work()
    assert len(mailbox.received()) == 1
    assert the_edit().details["notified"] is True


def test_without_smtp_development_logs_the_message_in_the_worker(
    app, people, hook, receiver, signed_in, work, caplog
):
    assert app.config["TNT_SMTP_URL"] is None and app.config["TNT_ENV"] == "development"
    edit_url(signed_in(people.sam), hook, receiver.url + "/moved")
    with caplog.at_level(logging.INFO, logger="tnt.mail"):
        work()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "tnt.mail")
    assert "was not sent" in logged and f"New URL:    {receiver.url}/moved" in logged
    details = the_edit().details
    assert details["notified"] is False and "development" in details["notice"]


def test_without_smtp_production_warns_that_the_notice_was_not_sent(
    app, people, hook, receiver, signed_in, work, caplog
):
    edit_url(signed_in(people.sam), hook, receiver.url + "/moved")
    app.config["TNT_ENV"] = "production"  # the worker's app: only the job's branch is tested
    with caplog.at_level(logging.INFO, logger="tnt.mail"):
        work()
    (warning,) = [r for r in caplog.records if r.name == "tnt.mail"]
    assert warning.levelno == logging.WARNING and "could not be sent" in warning.getMessage()
    assert "/moved" not in warning.getMessage()  # the message itself is not logged
    details = the_edit().details
    assert details["notified"] is False and "TNT_SMTP_URL" in details["notice"]


def test_an_smtp_server_that_is_down_is_recorded_and_retried(
    app, people, hook, receiver, signed_in, work
):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        app.config["TNT_SMTP_URL"] = f"smtp://127.0.0.1:{s.getsockname()[1]}"
    edit_url(signed_in(people.sam), hook, receiver.url + "/moved")
    work()
    details = the_edit().details
    assert details["notified"] is False and details["notice"].startswith("not sent: ")
    from rq.registry import ScheduledJobRegistry

    from tnt import queue

    assert ScheduledJobRegistry(queue=queue.queue()).count == 1  # RQ tries again later


def test_smtp_urls():
    assert SmtpServer.from_url("smtp://mail.example:2525") == SmtpServer(
        "mail.example", 2525, "plain"
    )
    assert SmtpServer.from_url("smtp+starttls://u%40x:p%2Fw@mail.example") == SmtpServer(
        "mail.example", 587, "starttls", "u@x", "p/w"
    )
    assert SmtpServer.from_url("smtps://mail.example").port == 465
    with pytest.raises(ValueError, match="smtp://") as exc:
        SmtpServer.from_url("http://user:hunter22@mail.example")
    assert "hunter22" not in str(exc.value)
    env = {"TNT_ENV": "development", "SECRET_KEY": "x"}
    assert from_env(env | {"TNT_SMTP_URL": "smtps://mail.example"})["TNT_SMTP_URL"]
    with pytest.raises(RuntimeError, match="TNT_SMTP_URL"):
        from_env(env | {"TNT_SMTP_URL": "mail.example:25"})
