"""Email: the notice to an account's users when support staff change one of its endpoints' URL
(signed webhooks then go somewhere new).

`queue_url_change_notice` is called after the change has committed; the job
(tnt.jobs.notify_url_change) builds the message and sends it, never the web request. Sent with
the standard library (email.message, smtplib) to the server TNT_SMTP_URL names:
- `smtp://host[:port]`: plain SMTP (port 25 by default);
- `smtp+starttls://[user:password@]host[:port]`: STARTTLS (587);
- `smtps://[user:password@]host[:port]`: TLS from the start (465).

Without TNT_SMTP_URL, development writes the message to the worker's log and production logs a
warning that it could not be sent. Either way the change's audit entry gets `notified` (true or
false) and `notice` (what happened) in its details.
"""

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from flask import current_app
from rq import Retry
from sqlalchemy import select

from . import audit, queue
from .clock import nairobi_iso
from .extensions import db
from .models import Account, AuditEntry, Endpoint, User

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds, for connecting and for each SMTP command
SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
# A server that is down for a while: tried again after 1, 5 and 15 minutes (RQ's scheduler).
RETRY = Retry(max=3, interval=[60, 300, 900])


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str  # plain | starttls | tls
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "SmtpServer":
        """Read TNT_SMTP_URL; ValueError (which never repeats the URL: it may hold a password)
        if it is not one of the forms above."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError("TNT_SMTP_URL must be smtp://, smtp+starttls:// or smtps://host")
        security, default_port = SCHEMES[parts.scheme]
        return cls(
            parts.hostname,
            parts.port or default_port,
            security,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


def send(server: SmtpServer, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    if server.security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, timeout=TIMEOUT, context=context
        )
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    with smtp:
        if server.security == "starttls":
            smtp.starttls(context=context)
        if server.username:
            smtp.login(server.username, server.password or "")
        smtp.send_message(message)


def queue_url_change_notice(entry_id: int) -> None:
    """Enqueue the notice of the URL change `entry_id` records (call after commit)."""
    from . import jobs

    try:
        queue.queue().enqueue(jobs.notify_url_change, entry_id, retry=RETRY, **queue.JOB_OPTIONS)
    except Exception as exc:
        log.warning("could not enqueue the URL change notice of audit entry %d: %s", entry_id, exc)
        audit.add_details(entry_id, notified=False, notice="not sent: it could not be queued")


def notify_url_change(entry_id: int) -> None:
    """Email the account's users about the URL change `entry_id` records, and note in the entry
    whether they were notified. An SMTP failure is noted, then raised (RQ tries again)."""
    entry = db.session.get(AuditEntry, entry_id)
    if entry is None or entry.account_id is None or entry.target_id is None:
        return
    recipients = list(
        db.session.scalars(
            select(User.email).where(User.account_id == entry.account_id).order_by(User.id)
        )
    )
    if not recipients:
        audit.add_details(entry_id, notified=False, notice="not sent: the account has no users")
        return
    message = url_change_message(entry, recipients)
    smtp_url = current_app.config.get("TNT_SMTP_URL")
    if not smtp_url:
        if current_app.config["TNT_ENV"] == "development":
            log.info("TNT_SMTP_URL is not set; this email was not sent:\n%s", message)
            notice = "not sent: no SMTP server in development (written to the worker's log)"
        else:
            log.warning(
                "the URL change notice of audit entry %d could not be sent to account %d's "
                "users: TNT_SMTP_URL is not set",
                entry_id,
                entry.account_id,
            )
            notice = "not sent: no SMTP server is configured (TNT_SMTP_URL)"
        audit.add_details(entry_id, notified=False, notice=notice)
        return
    try:
        send(SmtpServer.from_url(smtp_url), message)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        log.warning("the URL change notice of audit entry %d failed: %s", entry_id, exc)
        audit.add_details(entry_id, notified=False, notice=f"not sent: {exc}"[:300])
        raise
    audit.add_details(entry_id, notified=True, notice="emailed", recipients=recipients)


def url_change_message(entry: AuditEntry, recipients: list[str]) -> EmailMessage:
    """Who changed which endpoint's URL, when, from what to what."""
    endpoint = db.session.get(Endpoint, entry.target_id)
    account = db.session.get(Account, entry.account_id)
    url = entry.details.get("url", {})
    described = f" ({endpoint.description})" if endpoint and endpoint.description else ""
    message = EmailMessage()
    message["Subject"] = "TalkNTalk support changed a webhook endpoint's URL"
    message["From"] = current_app.config["TNT_MAIL_FROM"]
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="tnt.invalid")
    message.set_content(
        f"TalkNTalk support changed the URL of webhook endpoint {entry.target_id}{described} "
        f"of {account.name if account else 'your account'}. Signed webhooks now go to the new "
        "URL.\n\n"
        f"Changed by: {entry.actor}\n"
        f"When:       {nairobi_iso(entry.at)} (Africa/Nairobi)\n"
        f"Old URL:    {url.get('before', '')}\n"
        f"New URL:    {url.get('after', '')}\n\n"
        "If you did not expect this, contact support. The dashboard's Audit page lists every "
        "change to your account.\n"
    )
    return message
