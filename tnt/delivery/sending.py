"""Sending: one lane per endpoint in front of the libcurl transport.

The transport runs every POST of the process on one event loop, so a POST waiting on a
black-holed endpoint costs a socket, not a thread. The lanes decide what goes to it: at most
`per_endpoint` POSTs under way to one endpoint, at most `hold_per_endpoint` of its deliveries
claimed and unanswered in this process (the claim passes a full endpoint by, and gives any excess
back), and an endpoint whose POSTs are all under way with no answer for `slow_after` seconds is
reported slow so its backlog can be put off instead of scanned past by every claim.
"""

import functools
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from datetime import datetime

from ..clock import utcnow
from ..transport import Response, Transport
from .outgoing import Outgoing, request_headers
from .recording import Answer, Recorder
from .settings import EngineSettings

log = logging.getLogger(__name__)


class Lanes:
    """Per-endpoint queues of claimed deliveries, fed to the transport in turn."""

    def __init__(self, transport: Transport, settings: EngineSettings, recorder: Recorder):
        self.transport, self.settings, self.recorder = transport, settings, recorder
        self.cond = threading.Condition()
        self.lanes: dict[int, deque[Outgoing]] = defaultdict(deque)  # claimed, not started
        self.running: Counter[int] = Counter()  # endpoint id -> POSTs under way
        self.load: Counter[int] = Counter()  # endpoint id -> claimed and not yet answered
        self.unrecorded = 0  # claimed and neither recorded nor given back
        self.full: set[int] = set()  # endpoints at their hold, until half of it is answered
        self.freed = 0  # goes up when an endpoint leaves `full`
        self.answered_at: dict[int, float] = {}  # endpoint id -> last answer (or first claim)
        self.put_off_at: dict[int, float] = {}  # endpoint id -> when its backlog was put off
        self.closing = False

    # --- what the claim asks -------------------------------------------------------------------

    def saturated(self) -> list[int]:
        """Endpoints holding all this process may hold: the next claim passes them by."""
        with self.cond:
            return list(self.full)

    def claim_limit(self) -> int:
        """What the endpoints with work here can take, plus one more endpoint's share."""
        hold = self.settings.hold_per_endpoint
        with self.cond:
            room = sum(hold - n for e, n in self.load.items() if e not in self.full)
        return min(self.settings.batch, room + hold)

    def newly_slow(self) -> list[int]:
        """Slow endpoints whose backlog was not put off in the last deadline."""
        now = time.monotonic()
        again = now - self.settings.timeout
        with self.cond:
            slow = [
                e
                for e, n in self.running.items()
                if n >= self.settings.per_endpoint
                and now - self.answered_at.get(e, now) > self.settings.slow_after
                and self.put_off_at.get(e, 0.0) < again
            ]
            for e in slow:
                self.put_off_at[e] = now
            return slow

    def wait_for_room(self, timeout: float) -> bool:
        """True once few enough claimed deliveries are unanswered to claim more."""
        most = 2 * self.settings.in_flight
        with self.cond:
            return self.cond.wait_for(lambda: self.unrecorded <= most, timeout)

    def fit(self, items: list[Outgoing]) -> tuple[list[Outgoing], list[Outgoing]]:
        """Split a claim into what the endpoints' lanes may hold and the rest."""
        keep: list[Outgoing] = []
        excess: list[Outgoing] = []
        taken: Counter[int] = Counter()
        hold = self.settings.hold_per_endpoint
        with self.cond:
            for o in items:
                if self.load[o.endpoint_id] + taken[o.endpoint_id] < hold:
                    taken[o.endpoint_id] += 1
                    keep.append(o)
                else:
                    excess.append(o)
        return keep, excess

    # --- sending -------------------------------------------------------------------------------

    def submit(self, items: list[Outgoing]) -> None:
        """Queue claimed deliveries on their lanes and start what each lane may start."""
        starts, unsent = [], []
        hold, per_endpoint = self.settings.hold_per_endpoint, self.settings.per_endpoint
        with self.cond:
            self.unrecorded += len(items)
            for o in items:
                if not o.active or o.unusable:  # disabled or deleted since queued; or no secret
                    unsent.append(o)
                    continue
                e = o.endpoint_id
                if not self.load[e]:
                    self.answered_at[e] = time.monotonic()
                self.load[e] += 1
                if self.load[e] >= hold:
                    self.full.add(e)
                if self.running[e] < per_endpoint and not self.closing:
                    self.running[e] += 1
                    starts.append(o)
                else:
                    self.lanes[e].append(o)
        for o in unsent:
            failed = Response(status=None, error=o.unusable) if o.active else None
            self.recorder.add(Answer(o, utcnow(), failed))
        self._start(starts)

    def _start(self, items: list[Outgoing]) -> None:
        """POST these, each only while its lease has room for the whole POST; one that has
        waited too long in its lane is given back unsent (another claim sends it)."""
        now = time.monotonic()
        late: list[Outgoing] = []
        for o in items:
            if now > o.send_by:
                late.append(o)
                continue
            self.transport.submit(
                o.url, o.body, request_headers(o), functools.partial(self._done, o, utcnow())
            )
        if late:
            self.recorder.give_back(late)
            for o in late:
                self._answered(o, sent=False, started=True)

    def _done(self, o: Outgoing, started: datetime, response: Response) -> None:
        """The transport's callback (on its loop thread): record, then start the next POST of
        the same lane."""
        self.recorder.add(Answer(o, started, response))
        self._answered(o, sent=True, started=True)

    def _answered(self, o: Outgoing, *, sent: bool, started: bool = False) -> None:
        e = o.endpoint_id
        nxt = None
        with self.cond:
            if sent:
                self.answered_at[e] = time.monotonic()
            self.load[e] -= 1
            if e in self.full and self.load[e] <= self.settings.hold_per_endpoint // 2:
                self.full.discard(e)
                self.freed += 1
            if started:
                lane = self.lanes.get(e)
                if lane and not self.closing:
                    nxt = lane.popleft()  # its lane slot passes straight on
                else:
                    self.running[e] -= 1
                    if not self.running[e]:
                        del self.running[e]
            if not self.load[e]:
                del self.load[e]
                self.answered_at.pop(e, None)
                self.lanes.pop(e, None)
        if nxt is not None:
            self._start([nxt])

    def give_back(self, items: list[Outgoing]) -> None:
        """Claimed deliveries this process will not send: their claims are released."""
        with self.cond:
            self.unrecorded += len(items)
        self.recorder.give_back(items)

    def recorded(self, n: int) -> None:
        """The recorder wrote (or gave back) n more."""
        with self.cond:
            self.unrecorded -= n
            self.cond.notify_all()

    def settle(self, timeout: float) -> bool:
        """Wait up to `timeout` s for everything claimed here to be recorded or given back."""
        with self.cond:
            return self.cond.wait_for(lambda: not self.unrecorded, timeout)

    def close(self, timeout: float) -> None:
        """Stop starting POSTs: give back what waits in the lanes, wait for the rest."""
        with self.cond:
            self.closing = True
            left = [o for lane in self.lanes.values() for o in lane]
            for lane in self.lanes.values():
                lane.clear()
        if left:
            log.info("giving back %d claimed deliveries not yet sent", len(left))
            self.recorder.give_back(left)
            for o in left:
                self._answered(o, sent=False)
        if not self.settle(timeout):
            log.warning("stopped with POSTs still under way; their leases will expire")
