"""Slow-endpoint isolation: healthy endpoints' latency while others never answer.

    .venv/bin/python bench/isolation.py [--scenario one|scale] [--seconds 40]

Fires a steady stream of events for S seconds, twice: with every endpoint healthy (the
baseline) and with some endpoints faulty. A black hole accepts the connection and never answers,
so every POST to it runs to the 10 s deadline; a slow endpoint answers after 9 s. Prints the
healthy endpoints' event committed -> POST received latency after the first 15 s (p50 / p99 /
max), how many healthy deliveries never arrived, and how many were pushed into a retry.

Scenarios (one worker process):
- one:   100 events/s x 10 endpoints (1,000 deliveries/s); 1 black hole.
- scale: 10 events/s x 100 endpoints (1,000 deliveries/s); 20 black holes and 10 slow.
"""

import argparse
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
from throughput import delivery_uids, queued_messages, steady

WARMUP = 15  # seconds excluded from the figures, as the target says


SCENARIOS = {  # rate (events/s), endpoints, black holes, slow (answer after 9 s)
    "one": (100, 10, 1, 0),
    "scale": (10, 100, 20, 10),
}


def faulty_path(i: int, holes: int, slow: int) -> str:
    if i < holes:
        return f"blackhole{i}"
    if i < holes + slow:
        return f"slow{i}?delay=9"
    return f"e{i}"


def run(args, faulty: bool):
    from sqlalchemy import func, select

    from tnt import accounts, endpoints
    from tnt.extensions import db
    from tnt.models import Delivery, Endpoint

    rate, n_endpoints, holes, slow = SCENARIOS[args.scenario]
    if not faulty:
        holes = slow = 0
    db_url = fresh_database(args.database_url)
    recv_proc, base_url = bench_receiver.start()
    app = make_app(db_url, args.redis_url)
    with app.app_context():
        account_id = accounts.create_account("Isolation").id
        for i in range(n_endpoints):
            endpoints.create(
                account_id,
                f"{base_url}/{faulty_path(i, holes, slow)}",
                ["sms.sent"],
                secret="whsec_iso",
            )
    workers = start_workers(args.workers, db_url, args.redis_url)
    rss = RssSampler(workers)
    try:
        messages = queued_messages(app, account_id, rate * args.seconds + 4)
        share = CpuShare(
            {
                "worker": lambda: family(workers),
                "postgres": postgres_pids,
                "receiver": lambda: [recv_proc.pid],
                "redis": redis_pids,
            }
        )
        cpu = share.measure(start_in=WARMUP, seconds=args.seconds - WARMUP - 1)
        fired = steady(db_url, args.redis_url, messages, rate)
        time.sleep(3)  # let the last healthy deliveries land
        got = bench_receiver.received(base_url)
        t0 = min(t for _, t in fired)
        committed = {eid: t for eid, t in fired if t - t0 >= WARMUP}
        with app.app_context():
            healthy = Endpoint.url.like("%/e%")
            bad = set(
                db.session.scalars(select(Delivery.uid).join(Delivery.endpoint).where(~healthy))
            )
            retried = db.session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Delivery.endpoint)
                .where(healthy, Delivery.auto_attempts > 0)
            )
        uids = {
            uid: eid for uid, eid in delivery_uids(app, list(committed)).items() if uid not in bad
        }
        latencies = [(got[uid] - committed[eid]) * 1000 for uid, eid in uids.items() if uid in got]
        missing = sum(1 for uid in uids if uid not in got)
        achieved = len(fired) / (max(t for _, t in fired) - t0)
    finally:
        peak = rss.stop()
        stop(workers)
        recv_proc.terminate()
    label = f"{holes} black-holed, {slow} slow" if faulty else "all healthy"
    print(
        f"{label}: {achieved:,.0f} events/s x {n_endpoints} endpoints, healthy deliveries "
        f"after {WARMUP} s: {len(latencies):,} received, {missing} not yet, {retried} pushed "
        f"into a retry; latency p50 {percentile(latencies, 50):.0f} ms, p99 "
        f"{percentile(latencies, 99):.0f} ms, max {max(latencies, default=0):.0f} ms; worker "
        f"peak RSS {peak:.0f} MB",
        flush=True,
    )
    if cpu:
        print("  " + cpu_line(cpu), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenario", choices=SCENARIOS, default="scale")
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = ap.parse_args()
    run(args, faulty=False)
    run(args, faulty=True)


if __name__ == "__main__":
    main()
