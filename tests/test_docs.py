"""The documentation's code runs: docs/webhooks.md's receivers verify real deliveries."""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from tnt import endpoints, messages
from tnt.signing import signature

DOCS = Path(__file__).resolve().parent.parent / "docs"
SECRET = "whsec_docs_example_1"


def code_block(doc: str, language: str) -> str:
    """The one fenced code block in `language` in docs/<doc>."""
    (block,) = re.findall(rf"```{language}\n(.*?)```", (DOCS / doc).read_text(), re.S)
    return block


def post(url: str, body: bytes, headers: dict) -> int:
    """A request the test makes itself (not a webhook): the status code, 0 if refused."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("POST", parts.path, body, headers)
        return conn.getresponse().status
    except ConnectionRefusedError:
        return 0
    finally:
        conn.close()


def deliver_one_sms(account, url, work):
    """A real SMS, submitted and delivered: sms.sent and sms.delivered to `url`."""
    endpoints.create(account.id, url, ["sms.sent", "sms.delivered"], secret=SECRET)
    msg = messages.send_sms(
        account.id, "0712345678", "TALKNTALK", "Docs test", simulate="delivered"
    )
    work()
    work()
    return msg


def test_the_python_receiver_verifies_and_dedupes_real_deliveries(app, account, work, monkeypatch):
    monkeypatch.setenv("TALKNTALK_WEBHOOK_SECRET", SECRET)
    handled = []
    namespace = {"handle": handled.append, "__name__": "docs_receiver"}
    exec(code_block("webhooks.md", "python"), namespace)
    srv = make_server("127.0.0.1", 0, namespace["app"], threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/webhooks/talkntalk"
    try:
        msg = deliver_one_sms(account, url, work)
        assert [(e["event"], e["data"]["id"]) for e in handled] == [
            ("sms.sent", msg.id),
            ("sms.delivered", msg.id),
        ]
        body = json.dumps(handled[0]).encode()
        headers = {
            "X-TalkNTalk-Signature": signature(body, SECRET),
            "X-TalkNTalk-Delivery": "same-delivery",
            "Content-Type": "application/json",
        }
        assert post(url, body, headers) == 204
        assert post(url, body, headers) == 204  # a duplicate: acknowledged, not handled again
        assert len(handled) == 3
        assert post(url, body + b" ", headers) == 401  # tampered
    finally:
        srv.shutdown()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (Node.js)")
def test_the_node_receiver_verifies_and_dedupes_real_deliveries(app, account, work, tmp_path):
    script = tmp_path / "receiver.js"
    script.write_text(code_block("webhooks.md", "javascript"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = subprocess.Popen(
        ["node", str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TALKNTALK_WEBHOOK_SECRET=SECRET, PORT=str(port)),
    )
    url = f"http://127.0.0.1:{port}/webhooks/talkntalk"
    try:
        deadline = time.monotonic() + 10
        while post(url, b"{}", {}) != 401:  # listening, and refusing unsigned requests
            assert time.monotonic() < deadline and node.poll() is None
            time.sleep(0.05)
        msg = deliver_one_sms(account, url, work)
        body = b'{"event": "sms.sent", "data": {"id": 1, "status": "sent"}}'
        headers = {
            "X-TalkNTalk-Signature": signature(body, SECRET),
            "X-TalkNTalk-Delivery": "same-delivery",
        }
        assert post(url, body, headers) == 204
        assert post(url, body, headers) == 204  # a duplicate: acknowledged, not logged again
        assert post(url, body, {**headers, "X-TalkNTalk-Signature": "sha256=00"}) == 401
    finally:
        node.terminate()
    out = node.communicate(timeout=5)[0].splitlines()
    assert out == [
        f"sms.sent for message {msg.id}: sent",
        f"sms.delivered for message {msg.id}: delivered",
        "sms.sent for message 1: sent",
    ]
