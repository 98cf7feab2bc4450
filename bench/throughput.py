"""Delivery throughput and latency, end to end, against a fast local receiver.

    .venv/bin/python bench/throughput.py [--events 5000 --endpoints 4 --workers 1]

1. Baseline: a plain keep-alive HTTP client loop POSTing to the same receiver (the raw limit).
2. Throughput: N events fired (committed) at E endpoints, then the workers drain them; the
   rate is deliveries from the kick until the last attempt is recorded.
3. Latency: a steady R events/s for S seconds with the workers running; event committed ->
   POST received, p50 and p99.
Peak worker RSS is sampled throughout. Default: PostgreSQL and the local Redis server.
"""

import argparse
import statistics
import time

import receiver as bench_receiver
from common import (
    DEFAULT_DB,
    DEFAULT_REDIS,
    CpuShare,
    RssSampler,
    cpu_line,
    family,
    fresh_database,
    make_app,
    percentile,
    postgres_pids,
    redis_pids,
    start_workers,
    stop,
)


def baseline(url: str, n: int) -> tuple[float, float]:
    """A plain libcurl loop, one keep-alive connection: (POST/s, CPU µs per POST)."""
    import pycurl

    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.POSTFIELDS, b'{"event":"sms.sent"}')
    c.setopt(pycurl.WRITEFUNCTION, len)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        c.setopt(pycurl.HTTPHEADER, [f"X-TalkNTalk-Delivery: base-{i}"])
        c.perform()
    used = time.process_time() - cpu
    c.close()
    return n / (time.perf_counter() - started), used / n * 1e6


def postgres_row_baseline(app, rows: int = 20_000, per_statement: int = 200) -> float:
    """PostgreSQL CPU µs per row to INSERT rows shaped like attempts (no indexes, no engine):
    the floor under what a delivery's writes cost the database."""
    from sqlalchemy import insert, text

    from tnt.extensions import db
    from tnt.models import Attempt

    share = CpuShare({"postgres": postgres_pids})
    with app.app_context():
        db.session.execute(text("DROP TABLE IF EXISTS bench_rows"))
        db.session.execute(text("CREATE TABLE bench_rows (LIKE attempt INCLUDING DEFAULTS)"))
        db.session.commit()
        row = {c.name: None for c in Attempt.__table__.c if c.name != "id"} | {
            "delivery_id": 1,
            "account_id": 1,
            "endpoint_id": 1,
            "event_type": "sms.sent",
            "number": 1,
            "trigger": "auto",
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "duration_ms": 3,
            "ok": True,
            "status_code": 200,
            "response_headers": "{}",
            "response_body": "ok",
            "id": 0,
        }
        table = Attempt.__table__.to_metadata(db.MetaData(), name="bench_rows")
        with share.seconds() as used:
            for start in range(0, rows, per_statement):
                db.session.execute(
                    insert(table), [row | {"id": start + i} for i in range(per_statement)]
                )
                db.session.commit()
        db.session.execute(text("DROP TABLE bench_rows"))
        db.session.commit()
        db.session.remove()
    return used["postgres"] / rows * 1e6


def setup(app, base_url, n_endpoints):
    from tnt import accounts, endpoints

    with app.app_context():
        account = accounts.create_account("Bench")
        for i in range(n_endpoints):
            endpoints.create(account.id, f"{base_url}/e{i}", ["sms.sent"], secret="whsec_benchmark")
        return account.id


def queued_messages(app, account_id, n) -> list[int]:
    """n queued messages, written up front: an event is a status change of an existing one.
    Marked `hold`, so the sweeper does not submit them to the simulated carrier meanwhile."""
    from sqlalchemy import insert, select

    from tnt.clock import utcnow
    from tnt.extensions import db
    from tnt.models import Message

    now = utcnow()
    with app.app_context():
        first = db.session.scalar(select(Message.id).order_by(Message.id.desc()).limit(1)) or 0
        db.session.execute(
            insert(Message.__table__),
            [
                {
                    "account_id": account_id,
                    "mobile": "254712345678",
                    "sender_id": "BENCH",
                    "message": f"bench {i}",
                    "network": "safaricom",
                    "source": "api",
                    "status": "queued",
                    "simulate": "hold",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        db.session.commit()
        ids = db.session.scalars(
            select(Message.id).where(Message.id > first).order_by(Message.id)
        ).all()
        db.session.remove()
    return ids


def fire(app, message_ids, *, kick: bool, per_commit: int = 1):
    """sms.sent for each message through the real transition (lock the row, change its status,
    write the event and its deliveries, commit, kick); return [(event_id, commit_time)]."""
    from sqlalchemy import select

    from tnt import queue
    from tnt.extensions import db
    from tnt.messages import transition
    from tnt.models import Message

    fired = []
    with app.app_context():
        batch = []
        for message_id in message_ids:
            msg = db.session.scalar(
                select(Message).where(Message.id == message_id).with_for_update()
            )
            batch.append(transition(msg, "sent"))
            if len(batch) >= per_commit:
                db.session.commit()
                t = time.time()
                fired += [(event_id, t) for event_id in batch]
                batch = []
                if kick:
                    queue.kick()
        db.session.commit()
        db.session.remove()
    return fired


def _fire_steady(args):
    """In a child process (as a web process would be): fire at `rate` events/s."""
    db_url, redis_url, message_ids, rate, offset = args
    from tnt import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
    fire(app, message_ids[:1], kick=True)  # warm up: connections, statement caches
    out, interval = [], 1.0 / rate
    t_next = time.time() + offset
    for message_id in message_ids[1:]:
        time.sleep(max(0.0, t_next - time.time()))
        out += fire(app, [message_id], kick=True)
        t_next += interval
    return out


def steady(db_url, redis_url, message_ids, rate, procs=4):
    """Fire `rate` events/s, each committed on its own, from `procs` processes, one message
    each (plus one per process to warm up)."""
    import multiprocessing as mp

    start = 1.0  # let every process build its app first
    with mp.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(
            _fire_steady,
            [
                (db_url, redis_url, message_ids[i::procs], rate / procs, start + i / rate)
                for i in range(procs)
            ],
        )
    return [x for part in parts for x in part]


def attempts_recorded(app, ok=None) -> int:
    from sqlalchemy import func, select

    from tnt.extensions import db
    from tnt.models import Attempt

    query = select(func.count()).select_from(Attempt)
    if ok is not None:
        query = query.where(Attempt.ok.is_(ok))
    with app.app_context():
        n = db.session.scalar(query)
        db.session.remove()
        return n


def errors(app) -> list:
    from sqlalchemy import func, select

    from tnt.extensions import db
    from tnt.models import Attempt

    with app.app_context():
        rows = db.session.execute(
            select(Attempt.error, func.count()).where(Attempt.ok.is_(False)).group_by(Attempt.error)
        ).all()
        db.session.remove()
        return rows


def delivery_uids(app, event_ids) -> dict[str, int]:
    from sqlalchemy import select

    from tnt.extensions import db
    from tnt.models import Delivery

    with app.app_context():
        rows = db.session.execute(
            select(Delivery.uid, Delivery.event_id).where(Delivery.event_id.in_(event_ids))
        ).all()
        db.session.remove()
    return dict(rows)


def wait_for(app, total, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if attempts_recorded(app) >= total:
            return True
        time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--endpoints", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rate", type=int, default=200, help="events/s in the latency phase")
    ap.add_argument("--seconds", type=int, default=10, help="length of the latency phase")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = ap.parse_args()

    from tnt import queue

    db_url = fresh_database(args.database_url)
    recv_proc, base_url = bench_receiver.start()
    app = make_app(db_url, args.redis_url)
    account_id = setup(app, base_url, args.endpoints)

    runs = [baseline(f"{base_url}/baseline", 2000) for _ in range(3)]
    base_rates = [rate for rate, _ in runs]
    base_cpu = statistics.median(cpu for _, cpu in runs)
    print(
        f"baseline: plain libcurl loop, one keep-alive connection: "
        f"{statistics.median(base_rates):,.0f} POST/s, {base_cpu:.0f} µs CPU per POST "
        f"(median of 3 runs of 2,000)"
    )
    pg_row = statistics.median(postgres_row_baseline(app) for _ in range(3))
    print(
        f"baseline: PostgreSQL CPU per attempt-shaped row, batched INSERT, no indexes: "
        f"{pg_row:.0f} µs (median of 3 runs of 20,000)"
    )

    # Throughput: a backlog of events, fired before the workers start (their sweeper would
    # otherwise find it and start on it early), then one kick.
    fire(app, queued_messages(app, account_id, args.events), kick=False, per_commit=100)
    workers = start_workers(args.workers, db_url, args.redis_url)
    rss = RssSampler(workers)
    try:
        total = args.events * args.endpoints
        burst_cpu = CpuShare({"worker": lambda: family(workers), "postgres": postgres_pids})
        with burst_cpu.seconds() as used:
            started = time.perf_counter()
            with app.app_context():
                queue.kick()
            if not wait_for(app, total, timeout=300):
                print(f"throughput: TIMED OUT with {attempts_recorded(app)}/{total} attempts")
            elapsed = time.perf_counter() - started
        failed = attempts_recorded(app, ok=False)
        if failed:
            print(f"throughput: {failed} attempts FAILED: {errors(app)}")
        print(
            f"throughput: {total:,} deliveries ({args.events:,} events x {args.endpoints} "
            f"endpoints) with {args.workers} worker(s) in {elapsed:.1f} s = "
            f"{total / elapsed:,.0f} deliveries/s "
            f"({total / elapsed / statistics.median(base_rates):.2f}x the baseline loop)"
        )
        print(
            f"  CPU per delivery: worker {used['worker'] / total * 1e6:.0f} µs "
            f"(baseline libcurl loop {base_cpu:.0f} µs per POST), PostgreSQL "
            f"{used['postgres'] / total * 1e6:.0f} µs (baseline {pg_row:.0f} µs per row)"
        )

        # Latency at a steady rate, fired from a few threads as web processes would.
        before = attempts_recorded(app)
        procs = 4
        messages = queued_messages(app, account_id, args.rate * args.seconds + procs)
        share = CpuShare(
            {
                "worker": lambda: family(workers),
                "postgres": postgres_pids,
                "receiver": lambda: [recv_proc.pid],
                "redis": redis_pids,
            }
        )
        cpu = share.measure(start_in=3, seconds=args.seconds - 2)  # the steady part
        fired = steady(db_url, args.redis_url, messages, args.rate, procs)
        achieved = len(fired) / (max(t for _, t in fired) - min(t for _, t in fired))
        wait_for(app, before + len(fired) * args.endpoints, timeout=60)
        got = bench_receiver.received(base_url)
        committed = dict(fired)
        latencies = [
            (got[uid] - committed[eid]) * 1000
            for uid, eid in delivery_uids(app, list(committed)).items()
            if uid in got
        ]
        print(
            f"latency at {achieved:,.0f} events/s ({achieved * args.endpoints:,.0f} "
            f"deliveries/s) for {args.seconds} s: event committed -> POST received "
            f"p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, "
            f"max {max(latencies):.0f} ms ({len(latencies):,} deliveries)"
        )
        if cpu:
            print("  " + cpu_line(cpu))
    finally:
        peak = rss.stop()
        stop(workers)
        recv_proc.terminate()
    print(f"worker peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
