"""A fast local webhook receiver for the benchmarks (its own process, keep-alive HTTP/1.1).

It notes when each delivery was first accepted (X-TalkNTalk-Delivery -> time.time()) and serves
them as JSON on GET /received. Optional behaviours:

- `/blackhole...` paths never answer (a black hole);
- `/down...` paths always answer 500 (an endpoint that never recovers);
- `?delay=0.2` on a path answers after that many seconds (a slow endpoint);
- GET /fail/on and GET /fail/off: while on, every POST is answered 500 (an outage);
- GET /counts: {delivery id: [POSTs received, POSTs answered 2xx]}, for duplicates and retries.
"""

import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlsplit


def serve(port_out, fail=None):
    """HTTP/1.1 keep-alive on asyncio: a few microseconds per request, so the receiver costs the
    2-core machine little of what the workers and the database need."""
    received = {}
    counts = {}  # uid -> [hits, answered 2xx]
    state = {"fail": bool(fail)}

    def answer(method, target, headers):
        url = urlsplit(target)
        if method == "GET":
            if url.path == "/counts":
                body = counts
            elif url.path in ("/fail/on", "/fail/off"):
                state["fail"] = url.path == "/fail/on"
                body = state
            else:
                body = received
            return 200, json.dumps(body).encode()
        uid = headers.get("x-talkntalk-delivery", "")
        ok = not state["fail"] and not url.path.startswith("/down")
        hit = counts.setdefault(uid, [0, 0])
        hit[0] += 1
        if ok:
            hit[1] += 1
            received.setdefault(uid, time.time())
        return (200, b"ok") if ok else (500, b"no")

    async def connection(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", 0)))
                url = urlsplit(target)
                if method == "POST" and url.path.startswith("/blackhole"):
                    await asyncio.sleep(3600)  # accepts, reads, never answers
                delay = parse_qs(url.query).get("delay")
                if delay:
                    await asyncio.sleep(float(delay[0]))
                status, body = answer(method, target, headers)
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, b"OK" if status == 200 else b"Error", len(body), body)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


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
