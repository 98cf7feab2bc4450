"""A fast local webhook receiver for the benchmarks (its own process, keep-alive HTTP/1.1).

It notes when each delivery arrived (X-TalkNTalk-Delivery -> time.time()) and serves them as
JSON on GET /received. Optional behaviours: `/slow` paths never answer (a black hole).
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port_out, fail=None):
    received = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # or headers and body wait on delayed ACKs (40 ms)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            uid = self.headers.get("X-TalkNTalk-Delivery", "")
            if self.path.startswith("/blackhole"):
                time.sleep(3600)  # accepts, reads, never answers
            with lock:
                received.setdefault(uid, time.time())
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self):
            with lock:
                body = json.dumps(received).encode()
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


def received(base_url) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(base_url + "/received", timeout=30) as r:
        return json.loads(r.read())


if __name__ == "__main__":
    serve(type("Q", (), {"put": staticmethod(lambda p: print(p, flush=True))}))
    sys.exit(0)
