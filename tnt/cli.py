"""`flask tnt ...`: operator commands."""

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from . import accounts, endpoints, messages
from .errors import InvalidInput
from .extensions import db
from .models import EVENTS, Account
from .provider import SimulatedProvider
from .scope import Scope

tnt_cli = AppGroup("tnt", help="TalkNTalk Webhooks operator commands.")


def _account(ref: str) -> Account:
    query = (
        select(Account).where(Account.id == int(ref))
        if ref.isdigit()
        else (select(Account).where(Account.name == ref))
    )
    account = db.session.scalar(query)
    if account is None:
        raise click.BadParameter(f"no account {ref!r}", param_hint="--account")
    return account


def _fail_on_invalid(exc: InvalidInput):
    raise click.ClickException("; ".join(f"{k}: {v}" for k, v in exc.fields.items()))


@tnt_cli.command("create-account")
@click.argument("name")
def create_account(name):
    """Create an account."""
    try:
        account = accounts.create_account(name)
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(f"account {account.id} {account.name}")


@tnt_cli.command("create-user")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(["customer", "support"]), default="customer")
@click.option("--account", "account_ref", help="Account name or id (customers).")
def create_user(email, password, role, account_ref):
    """Create a dashboard user: a customer of one account, or support staff."""
    account_id = _account(account_ref).id if account_ref else None
    try:
        user = accounts.create_user(email, password, role=role, account_id=account_id)
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(f"user {user.id} {user.email} ({user.role})")


@tnt_cli.command("set-password")
@click.argument("email")
def set_password(email):
    """Set a user's password (prompted for, never an argument); signs them out everywhere."""
    user = accounts.find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email!r}")
    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.set_password(user, password)
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(f"password changed for {user.email}; every session of theirs is signed out")


@tnt_cli.command("create-endpoint")
@click.option("--account", "account_ref", required=True, help="Account name or id.")
@click.option("--url", required=True)
@click.option(
    "--events",
    "events_",
    default=",".join(EVENTS),
    help="Comma-separated, e.g. sms.sent,sms.delivered (default: all).",
)
@click.option("--secret", default=None, help="Signing secret; 'generate' makes one.")
@click.option("--description", default="")
def create_endpoint(account_ref, url, events_, secret, description):
    """Register a webhook endpoint."""
    if secret == "generate":  # noqa: S105  (the option's keyword, not a secret)
        secret = endpoints.generate_secret()
    try:
        endpoint = endpoints.create(
            _account(account_ref).id,
            url,
            [e.strip() for e in events_.split(",") if e.strip()],
            description,
            secret,
        )
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(
        f"endpoint {endpoint.id} {endpoint.url} [{endpoint.events}]"
        + (f" secret={endpoint.secret}" if secret else "")
    )


@tnt_cli.command("send-sms")
@click.option("--account", "account_ref", required=True, help="Account name or id.")
@click.option("--mobile", required=True)
@click.option("--message", required=True)
@click.option("--sender-id", default="TALKNTALK")
@click.option(
    "--simulate",
    type=click.Choice(SimulatedProvider.OUTCOMES),
    default=None,
    help="Force the simulated carrier's outcome.",
)
def send_sms(account_ref, mobile, message, sender_id, simulate):
    """Send an SMS through the (simulated) carrier; its events fire webhooks."""
    try:
        msg = messages.send_sms(
            _account(account_ref).id, mobile, sender_id, message, source="api", simulate=simulate
        )
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(f"message {msg.id} to {msg.mobile} ({msg.network}) queued")


@tnt_cli.command("worker")
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes to run under one supervisor (default: "
    "TNT_WORKER_PROCESSES, 1). One per core uses every core.",
)
def worker(burst, processes):
    """Run RQ workers with the scheduler and the sweeper (the app is built once)."""
    from . import worker as worker_mod

    app = current_app._get_current_object()
    worker_mod.limit_database_sessions(app)
    processes = processes or app.config["TNT_WORKER_PROCESSES"]
    if processes > 1 and not burst:
        raise SystemExit(worker_mod.run_many(app, processes))
    worker_mod.run(app, burst=burst)


@tnt_cli.command("sweep")
def sweep():
    """Re-enqueue due work once (what the worker's sweeper does every few seconds)."""
    from . import delivery

    click.echo(f"re-enqueued {delivery.sweep()}")


@tnt_cli.command("demo")
@click.option(
    "--receiver",
    default="http://127.0.0.1:5001/webhooks",
    help="URL for the demo account's endpoint.",
)
def demo(receiver):
    """Create the demo account, its users and an endpoint (idempotent); print how to sign in."""
    from . import demo as demo_mod

    if current_app.config["TNT_ENV"] != "development":
        # Its users have published passwords: never create them where customers sign in.
        raise click.ClickException("The demo is for development only (TNT_ENV=development).")

    for line in demo_mod.seed(receiver):
        click.echo(line)


@tnt_cli.command("run")
@click.option("--port", default=5000)
def run(port):
    """Development: web app, worker, demo receiver and (without REDIS_URL) a bundled Redis."""
    from . import devserver

    raise SystemExit(devserver.run(current_app.config, port))


api_key_cli = AppGroup("api-key", help="API keys: create (shown once), list, revoke.")
tnt_cli.add_command(api_key_cli)


@api_key_cli.command("create")
@click.option("--account", "account_ref", required=True, help="Account name or id.")
@click.option("--name", required=True, help="What the key is for, e.g. billing-server.")
def api_key_create(account_ref, name):
    """Create an API key; it is printed once and stored only as a hash."""
    from . import apikeys

    try:
        key, raw = apikeys.create(_account(account_ref).id, name)
    except InvalidInput as exc:
        _fail_on_invalid(exc)
    click.echo(f"api key {key.id} {key.name}: {raw}")
    click.echo("Keep it now: it cannot be shown again.")


@api_key_cli.command("list")
@click.option("--account", "account_ref", default=None, help="Account name or id (default: all).")
def api_key_list(account_ref):
    """List API keys (never the keys themselves)."""
    from . import apikeys

    scope = Scope.account(_account(account_ref).id) if account_ref else Scope.all_accounts()
    for key in apikeys.list_for(scope):
        used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
        state = "active" if key.active else "revoked"
        click.echo(
            f"{key.id}\taccount={key.account_id}\t{key.prefix}…\t{key.name}\t"
            f"last used {used}\t{state}"
        )


@api_key_cli.command("revoke")
@click.argument("key_id", type=int)
def api_key_revoke(key_id):
    """Revoke an API key at once."""
    from . import apikeys
    from .errors import NotFound

    try:
        key = apikeys.revoke(Scope.all_accounts(), key_id)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"api key {key.id} {key.name} revoked")


@tnt_cli.command("rotate-secrets-key")
def rotate_secrets_key():
    """Re-encrypt every endpoint signing secret with the first key in TNT_SECRETS_KEY.

    Put the new key first and keep the old ones after it, run this, then drop the old keys
    (docs/security.md). Secrets stored before encryption existed are encrypted too.
    """
    from . import crypto

    try:
        count = crypto.rotate_all(db.session)
    except crypto.SecretsKeyError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(
        f"re-encrypted {count} signing secret(s) with the first key in "
        f"{crypto.ENV_VAR}; older keys can now be removed from it"
    )
