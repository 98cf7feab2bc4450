"""A fast local webhook receiver for the benchmarks (its own process, keep-alive HTTP/1.1).

It notes when each delivery was first accepted (X-TalkNTalk-Delivery -> time.time()) and serves
them as JSON on GET /received. Optional behaviours:

- `/blackhole...` paths never answer (a black hole);
- `/down...` paths always answer 500 (an endpoint that never recovers);
- `?delay=0.2` on a path answers after that many seconds (a slow endpoint);
- GET /fail/on and GET /fail/off: while on, every POST is answered 500 (an outage);
- GET /counts: {delivery id: [POSTs received, POSTs answered 2xx]}, for duplicates and retries.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def serve(port_out, fail=None):
    received = {}
    counts = {}  # uid -> [hits, answered 2xx]
    state = {"fail": bool(fail)}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # or headers and body wait on delayed ACKs (40 ms)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            uid = self.headers.get("X-TalkNTalk-Delivery", "")
            url = urlsplit(self.path)
            if url.path.startswith("/blackhole"):
                time.sleep(3600)  # accepts, reads, never answers
            delay = parse_qs(url.query).get("delay")
            if delay:
                time.sleep(float(delay[0]))
            with lock:
                ok = not state["fail"] and not url.path.startswith("/down")
                hit = counts.setdefault(uid, [0, 0])
                hit[0] += 1
                if ok:
                    hit[1] += 1
                    received.setdefault(uid, time.time())
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"no")

        def do_GET(self):
            with lock:
                if self.path == "/counts":
                    body = json.dumps(counts)
                elif self.path in ("/fail/on", "/fail/off"):
                    state["fail"] = self.path == "/fail/on"
                    body = json.dumps(state)
                else:
                    body = json.dumps(received)
            body = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    port_out.put(server.server_port)
    server.serve_forever()


def start():
    """Start the receiver in a child process; return (process, base_url)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=serve, args=(q,), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{q.get(timeout=10)}"


def _get(base_url, path):
    import urllib.request

    with urllib.request.urlopen(base_url + path, timeout=30) as r:
        return json.loads(r.read())


def received(base_url) -> dict[str, float]:
    return _get(base_url, "/received")


def counts(base_url) -> dict[str, list[int]]:
    """{delivery id: [POSTs received, POSTs answered 2xx]}."""
    return _get(base_url, "/counts")


def set_failing(base_url, on: bool) -> None:
    """Answer every POST with 500 (on) or as usual (off)."""
    _get(base_url, "/fail/on" if on else "/fail/off")


if __name__ == "__main__":
    serve(type("Q", (), {"put": staticmethod(lambda p: print(p, flush=True))}))
    sys.exit(0)
