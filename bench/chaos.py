"""Faults while events are firing: nothing may be lost.

    .venv/bin/python bench/chaos.py [--events 10000] [--scenario kill|term|flush|redis-stop|
                                     pg-down|receiver-500|never|all]

Each scenario: a fresh PostgreSQL database (tnt_chaos), its own redis-server on a free port, two
`flask tnt worker` processes (each in its own process group: the worker and the RQ scheduler it
forks go down together, as on a host), a local receiver, and events fired at a steady rate while
the fault happens. The workers reach PostgreSQL through a small TCP proxy in this process, so
"PostgreSQL unreachable" is the proxy cutting every connection and refusing new ones; the
firing side (the web process) talks to PostgreSQL directly.

  kill          a worker SIGKILLed every --kill-every s (alternately), restarted at once
  term          the same with SIGTERM (a PaaS restart): it must finish or release its batch
  flush         FLUSHALL mid-run (queued jobs, the kick flag, RQ's own keys all gone)
  redis-stop    redis-server stopped for --redis-down s mid-run, then started again (empty)
  pg-down       PostgreSQL unreachable for the workers for --pg-down s mid-run
  receiver-500  the receiver answers 500 for --fail-for s, then recovers
  never         the receiver always answers 500: every delivery must end failed after 4

A supervisor restarts any worker that exits on its own (as a PaaS would) and counts it.
Then the system settles (bounded by --settle s) and the figures are read from the database and
from the receiver's per-delivery counts:
  lost = deliveries expected but missing, or not ended (delivered, or failed after 4 automatic
         attempts), or marked delivered without the receiver ever answering 2xx to them, plus
         events without delivery rows.
  duplicated = deliveries the receiver accepted (2xx) more than once.
Time is compressed where the design waits minutes, and the output says so: the lease of a dead
worker's claim (TNT_LEASE_SECONDS, default here 15 s instead of 120 s) and, in receiver-500 and
never, the 1/5/30-minute retry waits (due retries' next_attempt_at set to now once the receiver
has recovered, or at once for never).
"""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import receiver as bench_receiver
from common import fresh_database, make_app, start_worker

PG_HOST, PG_PORT = "127.0.0.1", 5432
DB_NAME = "tnt_chaos"
ENDPOINTS = 2
SCENARIOS = ("kill", "term", "flush", "redis-stop", "pg-down", "receiver-500", "never")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server (never the shared one), stoppable and restartable on one port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class PgProxy:
    """TCP forwarder to PostgreSQL. `down()` cuts every connection and closes the listening
    socket (new connections are refused); `up()` listens again on the same port."""

    def __init__(self):
        self.port = free_port()
        self._conns, self._lock = set(), threading.Lock()
        self._listener = None
        self.up()

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection((PG_HOST, PG_PORT))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Workers:
    """Two worker processes, restarted whenever they exit (as a PaaS would)."""

    def __init__(self, n, db_url, redis_url, env, log_dir):
        self.args = (db_url, redis_url, env)
        self.log_dir = log_dir
        self.procs = [self._start(i) for i in range(n)]
        self.exited_on_their_own = 0
        self.kills = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._supervise, daemon=True).start()

    def _start(self, i):
        return start_worker(
            *self.args, log_path=Path(self.log_dir) / f"worker{i}.log", new_session=True
        )

    def _supervise(self):
        while not self._stop.wait(0.5):
            with self._lock:
                for i, p in enumerate(self.procs):
                    if p.poll() is not None:
                        self.exited_on_their_own += 1
                        _killpg(p, signal.SIGKILL)  # its scheduler, if still there
                        self.procs[i] = self._start(i)

    def signal(self, i, sig, wait=30.0) -> float:
        """Send `sig` to worker i's process group, wait for it, start a new one; seconds taken."""
        with self._lock:
            p = self.procs[i]
            started = time.monotonic()
            _killpg(p, sig)
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                _killpg(p, signal.SIGKILL)
                p.wait()
            took = time.monotonic() - started
            _killpg(p, signal.SIGKILL)  # the scheduler child, whatever the signal did to it
            self.kills += 1
            self.procs[i] = self._start(i)
            return took

    def stop(self):
        self._stop.set()
        with self._lock:
            for p in self.procs:
                _killpg(p, signal.SIGTERM)
            for p in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=30)
                _killpg(p, signal.SIGKILL)
                p.wait()


def _killpg(proc, sig):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # our own child's group, never a broad match


def setup(app, base_url, path):
    from tnt import accounts, endpoints

    with app.app_context():
        account = accounts.create_account("Chaos")
        for i in range(ENDPOINTS):
            endpoints.create(
                account.id, f"{base_url}{path}/e{i}", ["sms.sent"], secret="whsec_chaos"
            )
        return account.id


def fire(app, account_id, n, rate, chunk=20, progress=None):
    """Fire n sms.sent events at `rate` events/s, `chunk` per commit, a kick after each."""
    from tnt import queue
    from tnt.clock import utcnow
    from tnt.extensions import db
    from tnt.messages import transition
    from tnt.models import Message

    started, fired = time.monotonic(), 0
    with app.app_context():
        while fired < n:
            for i in range(min(chunk, n - fired)):
                now = utcnow()
                msg = Message(
                    account_id=account_id,
                    mobile="254712345678",
                    sender_id="CHAOS",
                    message=f"chaos {fired + i}",
                    network="safaricom",
                    source="api",
                    created_at=now,
                    updated_at=now,
                )
                db.session.add(msg)
                db.session.flush()
                transition(msg, "sent")
            db.session.commit()
            fired += min(chunk, n - fired)
            if progress is not None:
                progress["fired"] = fired
            queue.kick()  # fails quietly while Redis is down; the sweeper covers it
            time.sleep(max(0.0, started + fired / rate - time.monotonic()))
        db.session.remove()
    return fired


def sql(app, statement, **params):
    from sqlalchemy import text

    from tnt.extensions import db

    with app.app_context():
        result = db.session.execute(text(statement), params)
        rows = result.all() if result.returns_rows else result.rowcount
        db.session.commit()
        db.session.remove()
        return rows


def unfinished(app) -> int:
    return sql(app, "SELECT count(*) FROM delivery WHERE status IN ('pending', 'retrying')")[0][0]


def compress_retries(app) -> int:
    """Make every waiting retry due now (skipping its 1/5/30-minute wait) and kick."""
    from tnt import queue

    moved = sql(
        app,
        "UPDATE delivery SET next_attempt_at = now() AT TIME ZONE 'utc' "
        "WHERE status = 'retrying' AND next_attempt_at > now() AT TIME ZONE 'utc' "
        "AND lease_token IS NULL",
    )
    if moved:
        with app.app_context():
            queue.kick()
    return moved


def run(scenario, args):
    own_redis = OwnRedis()
    proxy = PgProxy()
    db_url = fresh_database(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{DB_NAME}")
    workers_db = db_url.replace(f":{PG_PORT}/", f":{proxy.port}/")
    recv_proc, base_url = bench_receiver.start()
    app = make_app(db_url, own_redis.url)
    n = args.events
    account_id = setup(app, base_url, "/down" if scenario == "never" else "")
    log_dir = tempfile.mkdtemp(prefix=f"chaos-{scenario}-")
    notes = [
        f"lease for a claim {args.lease:g} s (TNT_LEASE_SECONDS; production 120 s)",
        f"workers' logs in {log_dir}",
    ]
    workers = Workers(2, workers_db, own_redis.url, {"TNT_LEASE_SECONDS": str(args.lease)}, log_dir)
    time.sleep(2.5)
    progress = {"fired": 0}
    firing = threading.Thread(
        target=fire, args=(app, account_id, n, args.rate), kwargs={"progress": progress}
    )
    t0 = time.monotonic()
    if scenario == "receiver-500":
        bench_receiver.set_failing(base_url, True)
    firing.start()
    fault_done = threading.Event()

    def at(fraction):  # wait until this fraction of the events has been fired
        while progress["fired"] < n * fraction and firing.is_alive():
            time.sleep(0.05)

    def fault():
        try:
            if scenario in ("kill", "term"):
                sig = signal.SIGKILL if scenario == "kill" else signal.SIGTERM
                i, took = 0, []
                while firing.is_alive() or i < 4:
                    time.sleep(args.kill_every)
                    took.append(workers.signal(i % 2, sig))
                    i += 1
                notes.append(
                    f"{i} x {sig.name} to a worker's process group every "
                    f"{args.kill_every:g} s, alternating, each restarted at once; "
                    f"exit took max {max(took):.1f} s"
                )
            elif scenario == "flush":
                at(0.5)
                from redis import Redis

                Redis.from_url(own_redis.url).flushall()
                notes.append(
                    f"FLUSHALL at {time.monotonic() - t0:.1f} s, {progress['fired']:,} events fired"
                )
            elif scenario == "redis-stop":
                at(0.3)
                own_redis.stop()
                notes.append(
                    f"redis-server stopped at {time.monotonic() - t0:.1f} s "
                    f"({progress['fired']:,} events fired) for {args.redis_down:g} s"
                )
                time.sleep(args.redis_down)
                own_redis.start()
                notes.append(f"redis-server started again (empty) at {time.monotonic() - t0:.1f} s")
            elif scenario == "pg-down":
                at(0.3)
                proxy.down()
                notes.append(
                    f"PostgreSQL unreachable for the workers at "
                    f"{time.monotonic() - t0:.1f} s ({progress['fired']:,} events "
                    f"fired) for {args.pg_down:g} s: connections cut, new ones refused"
                )
                time.sleep(args.pg_down)
                proxy.up()
            elif scenario == "receiver-500":
                time.sleep(args.fail_for)
                bench_receiver.set_failing(base_url, False)
                notes.append(f"receiver answered 500 from the start for {args.fail_for:g} s")
        finally:
            fault_done.set()

    threading.Thread(target=fault, daemon=True).start()
    firing.join()
    fired_in = time.monotonic() - t0
    fault_done.wait()
    settle_from = time.monotonic()
    compressed, rounds = 0, 0
    while time.monotonic() - settle_from < args.settle:
        if scenario in ("receiver-500", "never"):
            moved = compress_retries(app)
            compressed += moved
            rounds += bool(moved)
        if unfinished(app) == 0 and not sql(
            app, "SELECT 1 FROM delivery WHERE lease_token IS NOT NULL LIMIT 1"
        ):
            break
        time.sleep(1.0)
    settled_in = time.monotonic() - settle_from
    if compressed:
        notes.append(
            f"time compressed: {compressed:,} waiting retries made due at once in "
            f"{rounds} rounds (their 1/5/30-minute waits skipped)"
        )
    time.sleep(1.0)  # a straggling duplicate POST, if any, reaches the receiver
    workers.stop()
    report(app, scenario, n, base_url, fired_in, settled_in, workers, notes)
    recv_proc.terminate()
    own_redis.stop()
    proxy.down()


def report(app, scenario, n, base_url, fired_in, settled_in, workers, notes):
    events = sql(app, "SELECT count(*) FROM event")[0][0]
    no_rows = sql(
        app,
        "SELECT count(*) FROM event e WHERE NOT EXISTS "
        "(SELECT 1 FROM delivery d WHERE d.event_id = e.id)",
    )[0][0]
    rows = dict(sql(app, "SELECT uid, status || ':' || auto_attempts FROM delivery"))
    leased = sql(app, "SELECT count(*) FROM delivery WHERE lease_token IS NOT NULL")[0][0]
    expected = events * ENDPOINTS
    counts = bench_receiver.counts(base_url)
    accepted = {uid for uid, (_, ok) in counts.items() if ok}
    delivered = {uid for uid, s in rows.items() if s.startswith("delivered")}
    failed4 = {uid for uid, s in rows.items() if s == "failed:4"}
    not_ended = len(rows) - len(delivered) - len(failed4)
    unconfirmed = len(delivered - accepted)
    lost = (expected - len(rows)) + not_ended + unconfirmed + no_rows
    dup = [ok for uid, (_, ok) in counts.items() if ok > 1]
    posts = sum(hits for hits, _ in counts.values())
    print(f"\n== {scenario} ==")
    for note in notes:
        print(f"   {note}")
    print(f"   events fired           {events:,} (asked {n:,}, in {fired_in:.1f} s)")
    print(f"   deliveries expected    {expected:,} ({ENDPOINTS} endpoints); rows {len(rows):,}")
    print(f"   delivered              {len(delivered):,} (receiver accepted {len(accepted):,})")
    print(f"   failed after 4         {len(failed4):,}")
    print(
        f"   duplicated             {len(dup):,} deliveries accepted more than once "
        f"({sum(dup) - len(dup):,} extra 2xx POSTs); {posts:,} POSTs in all"
    )
    print(
        f"   lost                   {lost:,} (not ended {not_ended}, delivered but never "
        f"accepted {unconfirmed}, events without deliveries {no_rows}); still leased "
        f"{leased}"
    )
    print(
        f"   settled                {settled_in:.1f} s after the fault and the firing ended; "
        f"workers signalled {workers.kills}, exited on their own and restarted "
        f"{workers.exited_on_their_own}"
    )
    with app.app_context():
        from tnt import queue

        failed_jobs = queue.queue().failed_job_registry.count
    print(f"   RQ failed-job registry {failed_jobs} (a lost database ends a job quietly)")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=400, help="events/s while firing")
    ap.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument("--redis-down", type=float, default=30.0)
    ap.add_argument("--pg-down", type=float, default=10.0)
    ap.add_argument("--fail-for", type=float, default=60.0)
    ap.add_argument("--lease", type=float, default=15.0, help="claim lease for the workers, s")
    ap.add_argument("--settle", type=float, default=180.0, help="max settle time, s")
    args = ap.parse_args()
    # The firing side's "could not enqueue" warnings while Redis is down are expected here.
    import logging

    logging.getLogger("tnt.queue").setLevel(logging.ERROR)
    for scenario in SCENARIOS if args.scenario == "all" else (args.scenario,):
        run(scenario, args)


if __name__ == "__main__":
    main()
