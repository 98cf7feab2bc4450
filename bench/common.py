"""Shared set-up for the benchmarks: a fresh database, worker processes, RSS sampling."""

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/tnt_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"

# The benchmarks run on this machine with loopback receivers: development, not production.
os.environ.setdefault("TNT_ENV", "development")

# One signing-secrets key for the bench process and the workers it starts: each worker has its
# own instance folder, where a development key would otherwise be made per process.
if not os.environ.get("TNT_SECRETS_KEY"):
    from cryptography.fernet import Fernet

    os.environ["TNT_SECRETS_KEY"] = Fernet.generate_key().decode()


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def fresh_database(url: str) -> str:
    """Create the PostgreSQL database if missing; return the SQLAlchemy URL."""
    from tnt.config import database_url

    url = database_url(url)
    if url.startswith("postgresql"):
        import psycopg

        base, name = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    return url


def make_app(db_url: str, redis_url: str, **extra):
    from redis import Redis

    from tnt import create_app
    from tnt.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "REDIS_URL": redis_url,
            "TNT_ALLOW_LOOPBACK": True,
            **extra,
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
    Redis.from_url(redis_url).flushdb()
    return app


def start_worker(
    db_url: str, redis_url: str, env_extra=None, *, log_path=None, new_session: bool = False
) -> subprocess.Popen:
    """One `flask tnt worker` process, started without waiting for it to be ready.

    `log_path` keeps its output (else discarded); `new_session` puts it (and the RQ scheduler it
    forks) in its own process group, so `os.killpg` takes both down as a dying host would.
    """
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        TNT_ALLOW_LOOPBACK="1",
        TNT_INSTANCE_PATH=tempfile.mkdtemp(),
        **(env_extra or {}),
    )
    cmd = [sys.executable, "-m", "flask", "--app", "app", "tnt", "worker"]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115  (closed after Popen)
    try:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            start_new_session=new_session,
        )
    finally:
        if log_path:
            out.close()


def start_workers(n: int, db_url: str, redis_url: str, env_extra=None) -> list[subprocess.Popen]:
    procs = [start_worker(db_url, redis_url, env_extra) for _ in range(n)]
    time.sleep(2.5)  # imports, Redis registration, scheduler start
    return procs


def stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


class RssSampler:
    """Peak resident memory of the worker processes and their children (the RQ scheduler)."""

    def __init__(self, procs):
        import psutil

        self.procs = [psutil.Process(p.pid) for p in procs]
        self.peak_mb = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(0.25):
            for p in self.procs:
                with contextlib.suppress(Exception):
                    self.peak_mb = max(self.peak_mb, p.memory_info().rss / 2**20)

    def stop(self) -> float:
        self._stop.set()
        return self.peak_mb


class CpuShare:
    """CPU used by each part of the machine between two moments, in % of one core.

    `parts` maps a name to a function returning its pids (evaluated at each moment); what no
    part claims among this benchmark's child processes is counted as `load generator`.
    """

    def __init__(self, parts: dict):
        self.parts = parts

    def _snapshot(self) -> dict:
        import psutil

        def cpu(pid):
            try:
                t = psutil.Process(pid).cpu_times()
                return t.user + t.system
            except psutil.Error:
                return None

        taken, out = set(), {}
        for name, pids in self.parts.items():
            out[name] = {}
            for pid in pids():
                taken.add(pid)
                out[name][pid] = cpu(pid)
        mine = {c.pid for c in psutil.Process().children(recursive=True)} - taken
        out["load generator"] = {pid: cpu(pid) for pid in mine}
        out["machine"] = {0: sum(psutil.cpu_times()[:3])}  # user + nice + system
        return out

    def seconds(self):
        """A context manager: the CPU seconds each part used while it was open."""
        from contextlib import contextmanager

        @contextmanager
        def span():
            a, result = self._snapshot(), {}
            yield result
            b = self._snapshot()
            for name, now in b.items():  # a process started meanwhile counts from zero
                result[name] = sum(
                    v - (a[name].get(pid) or 0) for pid, v in now.items() if v is not None
                )

        return span()

    def measure(self, start_in: float, seconds: float) -> dict:
        """Start a thread that measures from `start_in` s from now for `seconds`; return a dict
        filled in when it is done."""
        result = {}

        def run():
            time.sleep(start_in)
            a, t = self._snapshot(), time.time()
            time.sleep(seconds)
            b, dt = self._snapshot(), time.time() - t
            for name, now in b.items():
                used = sum(
                    v - a[name][pid]
                    for pid, v in now.items()
                    if v is not None and a[name].get(pid) is not None
                )
                result[name] = used / dt * 100

        threading.Thread(target=run, daemon=True).start()
        return result


def postgres_pids():
    import psutil

    return [
        p.pid
        for p in psutil.process_iter(["username", "name"])
        if p.info["username"] == "postgres" or (p.info["name"] or "").startswith("postgres")
    ]


def redis_pids():
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]


def family(procs):
    """pids of these processes and their children (a worker and its RQ scheduler)."""
    import psutil

    out = []
    for proc in procs:
        try:
            p = psutil.Process(proc.pid)
            out += [p.pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.Error:
            pass
    return out


def cpu_line(share: dict) -> str:
    order = ["worker", "load generator", "postgres", "receiver", "redis"]
    parts = ", ".join(f"{name} {share[name]:.0f}%" for name in order if name in share)
    return f"CPU, % of one core (2 cores = 200%): {parts}; whole machine {share['machine']:.0f}%"
