"""Load on the latent explorer (`vaekit serve`): N client threads POST /api/decode with random z
(uniform in [-3, 3]^D) for T seconds against a server on 127.0.0.1 over a run directory, one HTTP
connection per request (the server speaks HTTP/1.0). Prints requests/s, p50/p99 latency under load,
the errors by kind (a reset connection, a 503 of a server with every thread busy), and the latency
of one decode alone (median of sequential requests, before the load).

The server runs in this process (a thread, as `vaekit serve` runs it), so clients and server share
the machine's cores: on a small machine the numbers are a lower bound of what a browser sees.
Without a run at RUN_DIR (default runs/demo), a tiny digits VAE (tests/eval_runs.make_run) is
trained into a temporary directory first.
Run: .venv/bin/python bench/serve_load.py [RUN_DIR] [--clients 8] [--seconds 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from vaekit.serve.app import ExplorerServer, make_server


def decode_once(host: str, port: int, z: list[float]) -> float:
    """Seconds for one POST /api/decode (connect, send, read the whole answer)."""
    body = json.dumps({"z": z}).encode()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("POST", "/api/decode", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}: {data[:200]!r}")
    finally:
        conn.close()
    return time.perf_counter() - t0


def error_kinds(errors: list[str]) -> str:
    """'ConnectionResetError 30, status 503 4': the errors counted by kind."""
    return ", ".join(f"{kind} {n}" for kind, n in collections.Counter(errors).most_common())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", default="runs/demo")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server (default: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run_dir = Path(args.run_dir)
    tmp = None
    if not (run_dir / "model.safetensors").is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from eval_runs import make_run  # the tests' tiny digits run, trained in seconds

        tmp = tempfile.TemporaryDirectory()
        run_dir = make_run(Path(tmp.name) / "run", latent=2)
        print(f"no run at {args.run_dir}: trained a tiny digits VAE into {run_dir}")

    server: ExplorerServer = make_server(run_dir, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    dim = server.explorer.dim
    shape = "x".join(map(str, server.explorer.model.image_shape))
    rng = random.Random(0)

    def z() -> list[float]:
        return [rng.uniform(-3.0, 3.0) for _ in range(dim)]

    try:
        for _ in range(20):  # warm up
            decode_once(host, port, z())
        single = statistics.median(decode_once(host, port, z()) for _ in range(200))

        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        stop = time.perf_counter() + args.seconds

        def client(i: int) -> None:
            local = random.Random(i)
            while time.perf_counter() < stop:
                try:
                    latencies[i].append(decode_once(host, port, [local.uniform(-3, 3) for _ in range(dim)]))
                except OSError as err:  # a reset, a refused or timed-out connection
                    errors.append(type(err).__name__)
                except RuntimeError as err:  # an answer other than 200
                    errors.append(str(err).split(":")[0])

        t0 = time.perf_counter()
        workers = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.shutdown()
        server.server_close()
        if tmp is not None:
            tmp.cleanup()

    done = [x for lat in latencies for x in lat]
    print(f"run {args.run_dir if tmp is None else 'tiny digits'}: latent {dim}, images {shape}; "
          f"server torch threads {args.threads}")
    print(f"single decode (sequential, median of 200): {single * 1e3:.2f} ms")
    print(f"{args.clients} clients for {elapsed:.1f} s: {len(done):,} requests, {len(done) / elapsed:,.0f} "
          f"requests/s, p50 {percentile(done, 0.5) * 1e3:.2f} ms, p99 {percentile(done, 0.99) * 1e3:.2f} ms, "
          f"{len(errors)} errors" + (f" ({kinds})" if (kinds := error_kinds(errors)) else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
