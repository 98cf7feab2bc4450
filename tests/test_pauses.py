"""A worker process frozen for longer than its lease (a VM or container freeze, a stop-the-world
pause), and the database going away under a worker: real `flask tnt worker` processes, SIGSTOP
and SIGCONT, a real receiver counting POSTs per delivery. Nothing is sent twice, nothing waits
on a frozen worker's locks past lease + deadline, and RQ's failed-job registry stays empty."""

import os
import signal
import time

import pytest
from sqlalchemy import text
from workers import all_delivered, deliveries, fire, wait_until

from tnt import endpoints, queue
from tnt.extensions import db

LEASE, TIMEOUT = 12.0, 1.0  # the worker's session limits follow: 3 s idle in a transaction
FAST = {"TNT_LEASE_SECONDS": str(LEASE), "TNT_DELIVERY_TIMEOUT": str(TIMEOUT)}


def stopped(proc) -> bool:
    """The process is stopped (SIGSTOP), as /proc says."""
    with open(f"/proc/{proc.pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def frozen_worker(spawn, point: str):
    """A worker that freezes itself at `point` of its first claim; returns it, once frozen,
    and the monotonic time it froze at."""
    worker = spawn(f"frozen-{point}", TNT_FAULT=f"pause-{point}", **FAST)
    queue.kick()
    wait_until(lambda: stopped(worker), 30, f"the worker to freeze {point}", [worker])
    return worker, time.monotonic()


def needs_postgresql(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip(
            "a frozen transaction holds row locks and is ended by the server's session "
            "limits only on PostgreSQL (TEST_DATABASE_URL); SQLite locks the whole file"
        )


def test_frozen_inside_its_claim_the_worker_sends_nothing_and_holds_nothing_up(
    app, account, hooks, spawn
):
    needs_postgresql(app)
    endpoints.create(account.id, hooks.url, ["sms.sent"])
    fire(account.id, 30)
    frozen, froze_at = frozen_worker(spawn, "in-claim")  # its 30 rows are locked, uncommitted
    other = spawn("other", **FAST)
    queue.kick()
    # PostgreSQL ends the frozen session after 3 s idle in its transaction; its locks go, and
    # the other worker sends everything, well before the frozen claim's lease would have ended.
    wait_until(all_delivered, LEASE + TIMEOUT, "the other worker to deliver", [other, frozen])
    assert time.monotonic() - froze_at < LEASE + TIMEOUT
    os.kill(frozen.pid, signal.SIGCONT)
    wait_until(
        lambda: "database is unavailable" in frozen.log.read_text(),
        10,
        "the thawed worker's commit to fail",
        [frozen],
    )
    time.sleep(0.5)  # anything it would wrongly send would reach the receiver by now
    hits = hooks.counts()
    assert len(hits) == 30 and set(hits.values()) == {1}, "a delivery was sent twice"
    assert queue.queue().failed_job_registry.count == 0


def test_frozen_after_its_claim_the_worker_gives_back_what_its_lease_cannot_cover(
    app, account, hooks, spawn
):
    """The claim committed, then the worker froze past its lease. Another worker sent the
    deliveries once the lease expired; the thawed worker reads its leases as stored, finds no
    room for a POST, and sends nothing."""
    endpoints.create(account.id, hooks.url, ["sms.sent"])
    fire(account.id, 30)
    frozen, _ = frozen_worker(spawn, "after-claim")
    other = spawn("other", **FAST)
    wait_until(all_delivered, 2 * LEASE, "the other worker to deliver", [other, frozen])
    os.kill(frozen.pid, signal.SIGCONT)
    wait_until(
        lambda: "too little lease left" in frozen.log.read_text(),
        10,
        "the thawed worker to give its claims back",
        [frozen],
    )
    time.sleep(0.5)
    hits = hooks.counts()
    assert len(hits) == 30 and set(hits.values()) == {1}, "a delivery was sent twice"


def test_the_database_going_away_leaves_no_failed_jobs(app, account, hooks, spawn):
    """Workers' connections cut (as by a PostgreSQL restart) while they claim and record:
    their jobs end quietly and the sweeper carries on; nothing is lost or sent twice."""
    needs_postgresql(app)
    hooks.delay = 0.05
    endpoints.create(account.id, hooks.url, ["sms.sent"])
    fire(account.id, 200)
    worker = spawn("cut", **FAST)
    queue.kick()
    wait_until(hooks.first_hit.is_set, 30, "the first POST", [worker])
    for _ in range(3):
        db.session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        db.session.commit()
        time.sleep(0.3)
    wait_until(all_delivered, 30, "every delivery delivered", [worker])
    assert len(deliveries()) == 200
    hits = hooks.counts()
    assert len(hits) == 200 and set(hits.values()) == {1}
    assert queue.queue().failed_job_registry.count == 0
