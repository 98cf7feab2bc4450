"""Helpers for tests that run real `flask tnt worker` processes (fixtures: conftest's `hooks`
and `spawn`)."""

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import select

from tnt.clock import utcnow
from tnt.extensions import db
from tnt.messages import transition
from tnt.models import Delivery, Message


class CountingReceiver:
    """Answers `status` after `delay` seconds; counts POSTs per X-TalkNTalk-Delivery."""

    def __init__(self):
        self.delay, self.status = 0.0, 200
        self.hits = Counter()
        self.first_hit = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.hits[self.headers["X-TalkNTalk-Delivery"]] += 1
                outer.first_hit.set()
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512  # two workers open 64 connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> Counter:
        with self._lock:
            return Counter(self.hits)


def fire(account_id: int, n: int) -> None:
    """n sms.sent events through the real transition, one commit, no kick (a backlog)."""
    for i in range(n):
        now = utcnow()
        msg = Message(
            account_id=account_id,
            mobile="254712345678",
            sender_id="FAULTS",
            message=f"fault {i}",
            network="safaricom",
            source="api",
            created_at=now,
            updated_at=now,
        )
        db.session.add(msg)
        db.session.flush()
        transition(msg, "sent")
    db.session.commit()


def deliveries() -> list[Delivery]:
    db.session.rollback()  # a fresh snapshot: the workers write in other processes
    db.session.expire_all()
    return list(db.session.scalars(select(Delivery).order_by(Delivery.id)))


def wait_until(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    logs = "\n".join(p.log.read_text()[-3000:] for p in procs)
    states = Counter((d.status, d.lease_token is not None, d.last_error) for d in deliveries())
    raise AssertionError(f"timed out waiting for {what}; (status, leased): {states}\n{logs}")


def all_delivered():
    return all(d.status == "delivered" for d in deliveries())
