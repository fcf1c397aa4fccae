"""Fairness of the latent explorer (`vaekit serve`) to its clients, three measures, each bounded:

  continue  a POST /api/decode whose headers say `Expect: 100-continue` (as curl sends a body over
            1 KB): seconds until the interim 100 (none: a client waits 1 s, as curl does, then sends
            the body anyway) and until the final answer; and the final status at once of one too
            large (413) and one of an unknown expectation (417).
  readers   one client reads an 8 MiB answer slowly (64 KiB every 50 ms) while --idle others ask
            for the same answer and read nothing, more than the doorman's buffer of unread
            answers holds (`max_buffered`, 256 MiB): is the reader's answer whole? (The 8 MiB
            answer is a route the benchmark adds, `/api/big`; no endpoint of a tiny run is as large.)
  heavy     --heavy clients ask GET /api/samples?n=64 or POST /api/encode (pixels, -log p(x) at
            k = 200), half each, in a loop for --seconds (a process of their own); meanwhile this
            process asks GET /api/info every 0.25 s: its latency (median, max) and the heavy
            requests answered, by status.

The server runs in a child process (`--child`; torch threads as `vaekit serve --threads`), over a
tiny digits run trained into a temporary directory. Every socket has a timeout; the whole run takes
about a minute.
Run: .venv/bin/python bench/serve_fair.py [--idle 60] [--heavy 150] [--seconds 10] [--threads 0]
     [--only continue|readers|heavy]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIG = 8 * 2**20
ENCODE = json.dumps({"pixels": [0.5] * 64}).encode()  # an 8 x 8 digit of the tiny run


def child(run_dir: str, threads: int) -> None:
    """The server (torch threads as `vaekit serve --threads`): its port on stdout, then serving until
    stdin closes."""
    from vaekit.device import set_threads
    from vaekit.serve import app

    set_threads(threads)
    app.ROUTES["/api/big"] = ("GET", lambda *_: {"x": "a" * BIG}, ())
    server = app.make_server(run_dir, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


def load(port: int, clients: int, seconds: float) -> None:
    """The heavy clients: their statuses counted, printed as JSON on stdout."""
    counts: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds

    def one(i: int) -> None:
        while time.monotonic() < stop:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                if i % 2:
                    conn.request("GET", "/api/samples?n=64")
                else:
                    conn.request("POST", "/api/encode", body=ENCODE,
                                 headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                conn.close()
                counts[str(r.status)] += 1
            except OSError as err:
                counts[type(err).__name__] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts), flush=True)


def connect(port: int, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(40)
    s.connect(("127.0.0.1", port))
    return s


def read_all(s: socket.socket, pause: float = 0.0) -> bytes:
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
            time.sleep(pause)
    except OSError:
        pass
    return b"".join(chunks)


def expect_continue(port: int) -> None:
    body = json.dumps({"z": [0.0] * 3}).encode()
    head = (b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n")
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(head % len(body))
        s.settimeout(1.0)  # curl's wait
        try:
            interim = s.recv(4096)
        except TimeoutError:
            interim = b""
        t1 = time.monotonic()
        s.settimeout(40)
        s.sendall(body)
        final = read_all(s)
        t2 = time.monotonic()
    first = interim.split(b"\r\n")[0].decode() or "none within 1 s"
    print(f"continue: interim {first!r} after {t1 - t0:.3f} s; final "
          f"{final.split(b' ')[1].decode() if final else '-'} after {t2 - t0:.3f} s")
    for name, extra in (("413", b"Expect: 100-continue\r\nContent-Length: 99999999\r\n\r\n"),
                        ("417", b"Expect: 101-wait\r\nContent-Length: 10\r\n\r\n")):
        with connect(port) as s:
            t0 = time.monotonic()
            s.sendall(head.split(b"Expect")[0] + extra)
            s.settimeout(3.0)
            try:
                reply = s.recv(4096)
            except TimeoutError:
                reply = b""
            line = reply.split(b"\r\n")[0].decode() or "nothing within 3 s"
            print(f"continue ({name} case): {line!r} after {time.monotonic() - t0:.3f} s")


def readers(port: int, idle: int) -> None:
    reader = connect(port)
    reader.sendall(b"GET /api/big HTTP/1.0\r\n\r\n")
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(read_all(reader, 0.05)))
    time.sleep(0.5)
    thread.start()
    time.sleep(0.5)
    others = []
    for _ in range(idle):
        s = connect(port, 4096)
        s.sendall(b"GET /api/big HTTP/1.0\r\n\r\n")
        others.append(s)
    thread.join(60)
    reader.close()
    whole = sum(len(read_all(s)) > BIG for s in others)
    for s in others:
        s.close()
    size = len(got[0]) if got else 0
    print(f"readers: the slow reader got {size:,} bytes ({'whole' if size > BIG else 'cut'}); "
          f"{whole} of {idle} non-readers got theirs whole")


def heavy(port: int, clients: int, seconds: float) -> None:
    loader = subprocess.Popen([sys.executable, __file__, "--load", str(port), str(clients), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    waits, statuses = [], collections.Counter()
    stop = time.monotonic() + seconds - 1.5
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/api/info")
            r = conn.getresponse()
            r.read()
            conn.close()
            statuses[r.status] += 1
        except OSError as err:
            statuses[type(err).__name__] += 1
        waits.append(time.monotonic() - t0)
        time.sleep(0.25)
    out, _ = loader.communicate(timeout=120)
    print(f"heavy: {clients} clients for {seconds:g} s answered {out.strip()}; /api/info x{len(waits)} "
          f"{dict(statuses)}: median {statistics.median(waits):.3f} s, max {max(waits):.3f} s")


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return 0
    if sys.argv[1:2] == ["--load"]:
        load(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--heavy", type=int, default=150)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0, help="the server's torch threads (0: vaekit serve's "
                    "default, the idle cores)")
    ap.add_argument("--only", choices=("continue", "readers", "heavy"), help="one measure alone")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from eval_runs import make_run  # the tests' tiny digits run, trained in seconds

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp) / "run", latent=3)
        server = subprocess.Popen([sys.executable, __file__, "--child", str(run_dir), str(args.threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            if args.only in (None, "continue"):
                expect_continue(port)
            if args.only in (None, "readers"):
                readers(port, args.idle)
            if args.only in (None, "heavy"):
                heavy(port, args.heavy, args.seconds)
        finally:
            server.communicate(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
