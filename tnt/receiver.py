"""A tiny webhook receiver for demos: prints each delivery and checks its signature.

python -m tnt.receiver --port 5001 --secret whsec_...
"""

import argparse
import contextlib
import hashlib
import hmac
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_signature(raw_body: bytes, secret: str, header: str) -> bool:
    """The spec's own verifier."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--secret", default="")
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            sig = self.headers.get("X-TalkNTalk-Signature", "")
            verdict = (
                "signature ok"
                if args.secret and verify_signature(body, args.secret, sig)
                else ("no signature" if not sig else "BAD SIGNATURE")
            )
            event = json.loads(body).get("event", "?")
            print(
                f"receiver: {event} delivery={self.headers.get('X-TalkNTalk-Delivery')} {verdict}",
                flush=True,
            )
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in `make run`'s terminal: a normal stop
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
