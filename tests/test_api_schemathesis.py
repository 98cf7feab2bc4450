"""Schemathesis against the live app, from the OpenAPI document it serves.

- Positive mode: no 5xx, every answer conforms to the document (status code, content type, body
  schema), and every request the document calls valid is accepted, so a document that promises
  more than the server takes fails here.
- Negative mode: every request the document calls invalid is refused with a 4xx, so a server
  that takes more than the document says fails here.
- Stateful mode: sequences that follow the document's links (create an endpoint, then read,
  change, test and delete it; send a message, then read and cancel it; …), with schemathesis'
  stateful checks (a created object can be read; a deleted one is gone).

Examples are few and derandomized, so the three runs take well under a minute.
"""

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from tnt import endpoints, events, inspectors, messages
from tnt.extensions import db
from tnt.models import Attempt, CapturedRequest, Delivery, Endpoint, Event, Inspector, Message

EXAMPLES = 60  # per operation and mode
DLR_SECRET = "dlr-secret-for-schemathesis"
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed(account, receiver) -> None:
    """The same few rows, with the same ids, every time (so small generated ids find objects,
    not only 404s, and a scenario Hypothesis replays meets the same rows)."""
    tables = [
        m.__table__
        for m in (CapturedRequest, Inspector, Attempt, Delivery, Event, Message, Endpoint)
    ]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(t.name for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:  # SQLite numbers rows from the largest id left
        for table in tables:
            db.session.execute(table.delete())
    ep = endpoints.create(account.id, receiver.url, ["sms.delivered"], secret="whsec_test_1234")
    for i in range(3):
        messages.send_sms(account.id, "0712345678", "ACME", f"m{i}", simulate="hold")
        events.fire_test(ep)
    db.session.commit()
    inspector = inspectors.create(account.id, "seeded")  # id 1, with request 1
    inspectors.capture(inspector, "POST", "", [("Content-Type", "text/plain")], b"hi", "127.0.0.1")


@pytest.fixture
def live(app, account, api_key, receiver):
    """The app's document loaded by schemathesis, with our keys and some real rows."""
    app.config["TNT_API_RATE_LIMIT"] = "100000/minute"
    app.config["TNT_DLR_SECRET"] = DLR_SECRET
    seed(account, receiver)
    # An endpoint URL is valid only if its host resolves to a public address (here: loopback,
    # allowed in tests), which no schema can say: valid URLs are the receiver's.
    schemathesis.openapi.format(
        "uri",
        st.sampled_from(
            [receiver.url, receiver.url + "/orders?x=1", receiver.url.replace("/hooks", "/")]
        ),
    )
    # Likewise a mobile number is valid only in a range a network holds (tnt/phones.py).
    schemathesis.openapi.format(
        "ke-mobile",
        st.sampled_from(["0712345678", "+254 733 123 456", "254110123456", "(0770) 123-456"]),
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

    @schema.auth(refresh_interval=None)
    class Keys:
        """The carrier's secret for /provider, the account's key elsewhere."""

        def get(self, case, ctx):
            return DLR_SECRET if case.operation.path.startswith("/provider/") else api_key

        def set(self, case, secret, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {secret}"

    schema.reseed = lambda: seed(account, receiver)
    return schema


def run(schema, mode: GenerationMode, checks: list) -> int:
    """Every operation in `mode`; fails listing each operation's failure. Returns the number of
    requests made."""
    failures, ran = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            nonlocal ran
            ran += 1
            case.call_and_validate(checks=checks)

        try:
            call()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    return ran


def test_positive_mode_requests_the_document_calls_valid_are_accepted(live):
    started = time.monotonic()
    assert run(live, GenerationMode.POSITIVE, [*CONFORMANCE, positive_data_acceptance]) >= 20
    assert time.monotonic() - started < 60


def test_negative_mode_requests_the_document_calls_invalid_are_refused(live):
    started = time.monotonic()
    assert run(live, GenerationMode.NEGATIVE, [*CONFORMANCE, negative_data_rejection]) >= 20
    assert time.monotonic() - started < 60


def test_stateful_mode_follows_the_documents_links(live):
    schema = live
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])  # what links are for

    class Machine(schema.as_state_machine()):
        def setup(self):
            schema.reseed()  # each scenario from the same rows: Hypothesis replays them

    started = time.monotonic()
    Machine.run(
        settings=settings(
            max_examples=100,
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    assert time.monotonic() - started < 60
