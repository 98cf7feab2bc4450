"""Slow-endpoint isolation: healthy endpoints' latency with one endpoint black-holed.

    .venv/bin/python bench/isolation.py [--rate 100 --seconds 40 --endpoints 10]

Fires a steady R events/s at E endpoints for S seconds, twice: with all endpoints healthy
(the baseline) and with one endpoint black-holed (it accepts the connection and never answers,
so every POST to it runs to the 10 s deadline). Prints the healthy endpoints' event committed ->
POST received latency after the first 15 s, p50 / p99 / max, for both runs.
"""
import argparse
import time

from common import (DEFAULT_DB, DEFAULT_REDIS, CpuShare, RssSampler, cpu_line, family,
                    fresh_database, make_app, percentile, postgres_pids, redis_pids,
                    start_workers, stop)
from throughput import delivery_uids, queued_messages, steady

import receiver as bench_receiver

WARMUP = 15  # seconds excluded from the figures, as the target says


def run(args, black_hole: bool):
    from sqlalchemy import select

    from tnt import accounts, endpoints
    from tnt.extensions import db
    from tnt.models import Delivery

    db_url = fresh_database(args.database_url)
    recv_proc, base_url = bench_receiver.start()
    app = make_app(db_url, args.redis_url)
    with app.app_context():
        account_id = accounts.create_account("Isolation").id
        for i in range(args.endpoints):
            path = "blackhole" if black_hole and i == 0 else f"e{i}"
            endpoints.create(account_id, f"{base_url}/{path}", ["sms.sent"], secret="whsec_iso")
    workers = start_workers(args.workers, db_url, args.redis_url)
    rss = RssSampler(workers)
    try:
        messages = queued_messages(app, account_id, args.rate * args.seconds + 4)
        share = CpuShare({"worker": lambda: family(workers), "postgres": postgres_pids,
                          "receiver": lambda: [recv_proc.pid], "redis": redis_pids})
        cpu = share.measure(start_in=WARMUP, seconds=args.seconds - WARMUP - 1)
        fired = steady(db_url, args.redis_url, messages, args.rate)
        time.sleep(3)  # let the last healthy deliveries land
        got = bench_receiver.received(base_url)
        t0 = min(t for _, t in fired)
        committed = {eid: t for eid, t in fired if t - t0 >= WARMUP}
        with app.app_context():
            blackholed = set(db.session.scalars(
                select(Delivery.uid).join(Delivery.endpoint)
                .where(Delivery.endpoint.property.mapper.class_.url.like("%/blackhole"))))
        uids = {uid: eid for uid, eid in delivery_uids(app, list(committed)).items()
                if uid not in blackholed}
        latencies = [(got[uid] - committed[eid]) * 1000 for uid, eid in uids.items() if uid in got]
        missing = sum(1 for uid in uids if uid not in got)
        achieved = len(fired) / (max(t for _, t in fired) - t0)
    finally:
        peak = rss.stop()
        stop(workers)
        recv_proc.terminate()
    label = "1 black-holed" if black_hole else "all healthy  "
    print(f"{label}: {achieved:,.0f} events/s x {args.endpoints} endpoints, healthy deliveries "
          f"after {WARMUP} s: {len(latencies):,} received, {missing} not yet; latency p50 "
          f"{percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, "
          f"max {max(latencies, default=0):.0f} ms; worker peak RSS {peak:.0f} MB", flush=True)
    if cpu:
        print("  " + cpu_line(cpu), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = ap.parse_args()
    run(args, black_hole=False)
    run(args, black_hole=True)


if __name__ == "__main__":
    main()
