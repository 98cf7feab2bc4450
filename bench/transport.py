"""CPU per POST: our Transport beside plain HTTP clients, against one fast local receiver.

    .venv/bin/python bench/transport.py [--posts 2000 --runs 5 --window 64]

The receiver (asyncio, keep-alive HTTP/1.1, answers 200 "ok") runs in its own process, so only
the client's CPU is counted: time.process_time() of this process, every thread included (the
Transport's loop thread does most of its work). Every client sends the same 200-byte JSON body
and headers over keep-alive connections, after a warm-up. Each figure is the median of --runs
runs; "x" is the ratio to http.client's CPU. Nothing is asserted: figures vary with the machine.
"""

import argparse
import asyncio
import http.client
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BODY = (
    b'{"event":"sms.delivered","message_id":"msg_0123456789","status":"delivered",'
    b'"mobile":"254712345678","network":"safaricom","at":"2026-01-01T00:00:00Z","n":"'
    + b"x" * 40
    + b'"}'
)
HEADERS = {
    "Content-Type": "application/json",
    "X-TalkNTalk-Signature": "t=1767225600,v1=" + "a" * 64,
    "X-TalkNTalk-Delivery": "dlv_0123456789",
}


def serve(ready):
    """The receiver: parses just enough (head end, Content-Length) to answer each request."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""

        def data_received(self, data):
            buf = self.buf + data
            while (end := buf.find(b"\r\n\r\n")) >= 0:
                head = buf[:end].lower()
                at = head.find(b"content-length:")
                length = (
                    int(
                        head[
                            at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None
                        ]
                    )
                    if at >= 0
                    else 0
                )
                if len(buf) < end + 4 + length:
                    break
                buf = buf[end + 4 + length :]
                self.transport.write(answer)
            self.buf = buf

    async def main():
        server = await asyncio.get_running_loop().create_server(
            Protocol, "127.0.0.1", 0, backlog=512
        )
        ready.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


# Each client: setup(url) -> (post_n(n), close()).
def client_http_client(url):
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port))

    def run(n):
        for _ in range(n):
            conn.request("POST", "/hook", BODY, HEADERS)
            response = conn.getresponse()
            response.read()

    return run, conn.close


def client_urllib3(url):
    import urllib3

    pool = urllib3.PoolManager(maxsize=1)

    def run(n):
        for _ in range(n):
            pool.request("POST", url, body=BODY, headers=HEADERS)

    return run, pool.clear


def client_requests(url):
    import requests

    session = requests.Session()

    def run(n):
        for _ in range(n):
            _ = session.post(url, data=BODY, headers=HEADERS).content

    return run, session.close


def client_pycurl_easy(url):
    import pycurl

    curl = pycurl.Curl()
    chunks = []
    curl.setopt(pycurl.URL, url)
    curl.setopt(
        pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in HEADERS.items()] + ["Expect:", "Accept:"]
    )
    curl.setopt(pycurl.WRITEFUNCTION, chunks.append)
    curl.setopt(pycurl.NOSIGNAL, 1)

    def run(n):
        for _ in range(n):
            curl.setopt(pycurl.POSTFIELDS, BODY)
            curl.perform()
            curl.getinfo(pycurl.RESPONSE_CODE)
            chunks.clear()

    return run, curl.close


def _transport():
    from tnt.transport import Transport

    return Transport(allow_loopback=True, timeout=10)


def client_transport_post(url):
    transport = _transport()

    def run(n):
        for _ in range(n):
            response = transport.post(url, BODY, HEADERS)
            assert response.ok, response.error

    return run, transport.close


def client_transport_submit(url, window):
    transport = _transport()

    def run(n):
        room, finished, errors = threading.Semaphore(window), threading.Event(), []
        left = [n]
        lock = threading.Lock()

        def done(response):  # on the loop thread: cheap
            if response.error:
                errors.append(response.error)
            room.release()
            with lock:
                left[0] -= 1
                if not left[0]:
                    finished.set()

        for _ in range(n):
            room.acquire()
            transport.submit(url, BODY, HEADERS, done)
        finished.wait()
        assert not errors, errors[:3]

    return run, transport.close


def measure(setup, url, posts, runs):
    run, close = setup(url)
    try:
        run(min(200, posts))  # warm-up: connections open, caches filled
        cpu, wall = [], []
        for _ in range(runs):
            c, w = time.process_time(), time.perf_counter()
            run(posts)
            cpu.append((time.process_time() - c) / posts * 1e6)
            wall.append((time.perf_counter() - w) / posts * 1e6)
    finally:
        close()
    return statistics.median(cpu), statistics.median(wall)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000, help="POSTs per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=64, help="POSTs in flight for submit()")
    args = parser.parse_args()

    ready = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(ready,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ready.get(timeout=10)}/hook"

    import pycurl
    import requests
    import urllib3

    print(
        f"{pycurl.version}; urllib3 {urllib3.__version__}; requests {requests.__version__}; "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"{args.posts} POSTs per run, median of {args.runs} runs, keep-alive, receiver in its own process\n"
    )
    clients = [
        ("http.client (one connection)", client_http_client),
        ("urllib3 PoolManager", client_urllib3),
        ("requests Session", client_requests),
        ("pycurl easy handle, perform()", client_pycurl_easy),
        ("Transport.post(), one at a time", client_transport_post),
        (
            f"Transport.submit(), {args.window} in flight",
            lambda u: client_transport_submit(u, args.window),
        ),
    ]
    results = [(name, *measure(setup, url, args.posts, args.runs)) for name, setup in clients]
    base = results[0][1]
    print(f"{'client':<36} {'CPU µs/POST':>12} {'x':>6} {'wall µs/POST':>13}")
    for name, cpu, wall in results:
        print(f"{name:<36} {cpu:>12.0f} {cpu / base:>6.2f} {wall:>13.0f}")
    server.kill()


if __name__ == "__main__":
    main()
