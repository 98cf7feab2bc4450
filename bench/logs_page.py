"""Logs page speed with many attempts: fills the tables in bulk, then times each view.

    .venv/bin/python bench/logs_page.py [--rows 1000000] [--database-url URL] [--repeat 40]

The README's figures are from 1,000,000 rows on SQLite and PostgreSQL and 10,000,000 on
PostgreSQL (--rows 10000000; the fill takes about 10 minutes there).

Without --database-url it uses a fresh SQLite file under /tmp. The database's tables are
dropped and re-created. Figures are server time through the Flask test client (no network),
median and p95 per view, against two baselines measured in the same run: a bare request
(/healthz) and the Logs page of an account with no attempts.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.exceptions import RedisError
from sqlalchemy import insert, text

from tnt import apikeys, create_app, hourly, queue
from tnt.clock import utcnow
from tnt.config import database_url as normalise
from tnt.events import SAMPLE_DATA, render
from tnt.extensions import db
from tnt.models import EVENTS, Account, Attempt, Delivery, Endpoint, Event, Message, User

ACCOUNTS = 10
ENDPOINTS_PER_ACCOUNT = 4
BIG_SHARE = 0.8  # the measured customer owns most rows: the worst case for its pages
DAYS = 60
BATCH = 20_000


def fill(rows: int, seed: int = 7) -> dict:
    """Accounts, endpoints, events, deliveries and `rows` attempts, in bulk batches."""
    rnd = random.Random(seed)
    now = utcnow()
    start = now - timedelta(days=DAYS)
    accounts = [
        {"id": i + 1, "name": f"Bench {i + 1}", "created_at": start} for i in range(ACCOUNTS + 1)
    ]
    db.session.execute(insert(Account), accounts)
    empty_account = ACCOUNTS + 1
    users = [
        {
            "id": 1,
            "email": "big@bench.test",
            "password_hash": "x",
            "role": "customer",
            "account_id": 1,
            "created_at": start,
        },
        {
            "id": 2,
            "email": "empty@bench.test",
            "password_hash": "x",
            "role": "customer",
            "account_id": empty_account,
            "created_at": start,
        },
        {
            "id": 3,
            "email": "support@bench.test",
            "password_hash": "x",
            "role": "support",
            "account_id": None,
            "created_at": start,
        },
    ]
    db.session.execute(insert(User), users)
    endpoints = []
    for a in range(1, ACCOUNTS + 1):
        for k in range(ENDPOINTS_PER_ACCOUNT):
            endpoints.append(
                {
                    "id": len(endpoints) + 1,
                    "account_id": a,
                    "url": f"https://hooks{k}.example.com/a{a}",
                    "description": "",
                    "events": " ".join(EVENTS),
                    "secret": None,
                    "enabled": True,
                    "created_at": start,
                    "deleted_at": None,
                }
            )
    db.session.execute(insert(Endpoint), endpoints)
    db.session.commit()

    event_types = list(EVENTS)
    event_weights = [40, 40, 5, 10, 5]
    # Delivery outcomes: most delivered; some failed after 4 tries; a few still retrying.
    outcomes = [("delivered", 1), ("delivered", 2), ("failed", 4), ("retrying", 2), ("pending", 0)]
    outcome_weights = [88, 5, 5, 1.5, 0.5]
    body = render("sms.delivered", now, SAMPLE_DATA | {"created_at": "x", "updated_at": "x"})
    span = (now - start).total_seconds()

    messages, events, deliveries, attempts = [], [], [], []
    made = 0
    delivery_id = 0
    stats = {"messages": [], "mobiles": []}
    t0 = time.perf_counter()
    while made < rows:
        delivery_id += 1
        if delivery_id % 2:  # a message, and two events of it (each to one endpoint)
            message_id = delivery_id // 2 + 1
            account = 1 if rnd.random() < BIG_SHARE else rnd.randint(2, ACCOUNTS)
            mobile = f"2547{rnd.randint(0, 99_999_999):08d}"
            at = start + timedelta(seconds=span * (made / rows) + rnd.random())
            messages.append(
                {
                    "id": message_id,
                    "account_id": account,
                    "mobile": mobile,
                    "sender_id": "BENCH",
                    "message": "x",
                    "status": "delivered",
                    "network": "safaricom",
                    "source": "api",
                    "simulate": None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            if account == 1 and rnd.random() < 0.002:
                stats["messages"].append(message_id)
                stats["mobiles"].append(mobile)
        endpoint = (account - 1) * ENDPOINTS_PER_ACCOUNT + rnd.randint(1, ENDPOINTS_PER_ACCOUNT)
        etype = rnd.choices(event_types, event_weights)[0]
        status, tries = rnd.choices(outcomes, outcome_weights)[0]
        # Time grows with the id, as in real life.
        at = start + timedelta(seconds=span * (made / rows) + rnd.random())
        events.append(
            {
                "id": delivery_id,
                "account_id": account,
                "message_id": message_id,
                "type": etype,
                "body": body,
                "is_test": False,
                "fired_at": at,
            }
        )
        deliveries.append(
            {
                "id": delivery_id,
                "uid": str(uuid.UUID(int=rnd.getrandbits(128))),
                "account_id": account,
                "event_id": delivery_id,
                "endpoint_id": endpoint,
                "status": status,
                "auto_attempts": tries,
                "attempts_count": tries,
                "next_attempt_at": at + timedelta(minutes=5)
                if status in ("retrying", "pending")
                else None,
                "lease_expires_at": None,
                "lease_token": None,
                "last_error": None if status == "delivered" else "HTTP 500: not a 2xx response",
                "created_at": at,
                "updated_at": at,
            }
        )
        for n in range(1, tries + 1):
            ok = status == "delivered" and n == tries
            made += 1
            attempts.append(
                {
                    "id": made,
                    "delivery_id": delivery_id,
                    "account_id": account,
                    "endpoint_id": endpoint,
                    "event_type": etype,
                    "message_id": message_id,
                    "mobile": mobile,
                    "number": n,
                    "trigger": "auto",
                    "requested_by_id": None,
                    "started_at": at + timedelta(minutes=(0, 1, 6, 36)[n - 1]),
                    "duration_ms": rnd.randint(20, 900),
                    "ok": ok,
                    "status_code": 200 if ok else 500,
                    "response_headers": "{}",
                    "response_body": "ok" if ok else "Internal Server Error",
                    "error": None if ok else "HTTP 500: not a 2xx response",
                }
            )
        if len(attempts) >= BATCH and not delivery_id % 2:  # a message's two events together
            _flush(messages, events, deliveries, attempts)
            print(f"  {made:,} attempts ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    _flush(messages, events, deliveries, attempts)
    if db.engine.dialect.name == "postgresql":
        for table in ("account", "user", "endpoint", "message", "event", "delivery", "attempt"):
            db.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'(SELECT max(id) FROM "{table}"))'
                )
            )
        db.session.commit()
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    stats["empty_account"] = empty_account
    return stats


TABLES = (Message, Event, Delivery, Attempt)


def _flush(*groups):
    """Write the batch (messages, events, deliveries, attempts, in that order) and empty it."""
    if not groups[0] and not groups[1]:
        return
    if db.engine.dialect.name == "postgresql":
        _copy(groups)
    else:
        conn = db.session.connection()
        for model, rows in zip(TABLES, groups, strict=False):
            if rows:
                conn.execute(insert(model.__table__), rows)
    db.session.commit()
    for rows in groups:
        rows.clear()


def _copy(groups):
    """PostgreSQL COPY through psycopg: far faster than INSERTs."""
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cur:
        for model, rows in zip(TABLES, groups, strict=False):
            if not rows:
                continue
            columns = list(rows[0])
            sql = f'COPY "{model.__tablename__}" ({", ".join(columns)}) FROM STDIN'
            with cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])


def timed(client, url: str, repeat: int, before=None) -> tuple[float, float, int]:
    client.get(url)  # warm: templates compiled, the pages of the index in cache
    samples = []
    status = 0
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        resp = client.get(url)
        samples.append((time.perf_counter() - t) * 1000)
        status = resp.status_code
        if status != 200:
            raise SystemExit(f"{url}: HTTP {status}")
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    return statistics.median(samples), p95, status


def signed_in(app, user_id: int):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    return client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis for the 24 h counts' cache (its tnt:hourly:* keys are "
        "cleared); without it they are counted on every view",
    )
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='tnt-bench-')}/bench.db"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": normalise(url),
            "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            **({"REDIS_URL": args.redis_url} if args.redis_url else {}),
        }
    )

    def forget_hourly_counts():
        try:
            r = queue.redis()
            for key in r.scan_iter("tnt:hourly:*"):
                r.delete(key)
        except RedisError:
            pass

    def forget_last_hour():
        """As at the first view after an hour ended: the hour just settled is not cached yet."""
        last = hourly.cache_field(hourly.settled_hours(utcnow())[-1])
        try:
            r = queue.redis()
            for key in r.scan_iter("tnt:hourly:*"):
                r.hdel(key, last)
        except RedisError:
            pass

    with app.app_context():
        dialect = db.engine.dialect.name
        print(f"filling {args.rows:,} attempts into {dialect} ...", file=sys.stderr)
        db.drop_all()
        db.create_all()
        t = time.perf_counter()
        stats = fill(args.rows)
        print(f"filled in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        _key, api_key = apikeys.create(1, "bench")
        forget_hourly_counts()
        day = (utcnow() - timedelta(days=10)).date().isoformat()
        db.session.remove()

    customer, empty, support = signed_in(app, 1), signed_in(app, 2), signed_in(app, 3)
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    cursor_page = customer.get("/logs").get_data(as_text=True)
    more = cursor_page.split('hx-get="/logs/rows?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    views = [
        ("baseline: bare request (/healthz)", customer, "/healthz"),
        ("baseline: Logs, account with no attempts", empty, "/logs"),
        ("Logs first page", customer, "/logs"),
        ("Logs, load more (keyset page 2)", customer, "/logs/rows?" + more),
        ("status=delivered", customer, "/logs?status=delivered"),
        ("status=failed", customer, "/logs?status=failed"),
        ("status=retrying", customer, "/logs?status=retrying"),
        ("status=pending", customer, "/logs?status=pending"),
        ("status=pending, event=sms.failed", customer, "/logs?status=pending&event=sms.failed"),
        ("endpoint", customer, "/logs?endpoint_id=2"),
        ("event=sms.failed", customer, "/logs?event=sms.failed"),
        ("date range (one day, 10 days ago)", customer, f"/logs?from={day}&to={day}"),
        ("search: message id", customer, f"/logs?q={stats['messages'][0]}"),
        ("search: mobile", customer, f"/logs?q={stats['mobiles'][0]}"),
        ("support, all accounts", support, "/logs"),
        ("support, status=failed", support, "/logs?status=failed"),
        ("support, status=pending", support, "/logs?status=pending"),
        ("chart (24 h SVG, loaded by htmx)", customer, "/logs/chart"),
        ("chart, first view after an hour ends", customer, "/logs/chart", forget_last_hour),
        ("chart, nothing cached (first in a day)", customer, "/logs/chart", forget_hourly_counts),
        ("Endpoints page (24 h success rates)", customer, "/endpoints"),
        ("Endpoints page, first view after an hour", customer, "/endpoints", forget_last_hour),
        ("Endpoints page, nothing cached", customer, "/endpoints", forget_hourly_counts),
        ("API: deliveries, newest first", api, "/api/v1/deliveries"),
        ("API: deliveries, status=failed", api, "/api/v1/deliveries?status=failed"),
        ("API: deliveries, status=pending", api, "/api/v1/deliveries?status=pending"),
        ("API: deliveries, endpoint", api, "/api/v1/deliveries?endpoint_id=2"),
        (
            "API: deliveries, message id",
            api,
            f"/api/v1/deliveries?message_id={stats['messages'][1]}",
        ),
        ("API: deliveries, mobile", api, f"/api/v1/deliveries?mobile={stats['mobiles'][1]}"),
    ]
    print(f"\n{dialect}, {args.rows:,} attempts, {args.repeat} requests per view")
    print(f"{'view':44} {'median ms':>10} {'p95 ms':>8}")
    results = {}
    for name, client, path, *before in views:
        with app.app_context():
            median, p95, _ = timed(client, path, args.repeat, *before)
        results[name] = (median, p95)
        flag = "" if name.startswith("baseline") or p95 <= 100 else "  > 100 ms"
        print(f"{name:44} {median:10.1f} {p95:8.1f}{flag}")
    print(json.dumps({"dialect": dialect, "rows": args.rows, "results": results}), file=sys.stderr)


if __name__ == "__main__":
    main()
