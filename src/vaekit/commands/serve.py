"""`vaekit serve RUN_DIR [--host H] [--port P] [--threads N] [--device D]`: the latent explorer of a
VAE run, a page and a JSON API on http://127.0.0.1:PORT/ (vaekit.serve.app)."""

from __future__ import annotations

import argparse
import sys

from vaekit.commands.flags import add_device_flag, int_flag, run_dir_argument
from vaekit.device import set_threads
from vaekit.serve.app import make_server


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="explore a VAE run's latent space in the browser (localhost)",
        description="Serve a page and a JSON API over a run's best model: the test codes on a map, "
        "decodes of any z, interpolations, samples and uploads encoded with their log-likelihood. "
        "Binds 127.0.0.1 unless --host says otherwise; Ctrl-C stops it.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=run_dir_argument,
                   help="a run directory of `vaekit train`")
    p.add_argument("--host", default="127.0.0.1", type=host_flag,
                   help="address to listen on (default: 127.0.0.1; any other is reachable by others)")
    p.add_argument("--port", type=int_flag("--port", 0, 65535), default=8765,
                   help="port to listen on, 0 for a free one (default: 8765)")
    p.add_argument("--threads", type=int_flag("--threads", 0, 1024), default=0,
                   help="torch CPU threads, 0 for the idle cores (default: 0)")
    add_device_flag(p, "the model lives and each request computes")
    p.set_defaults(func=run)


def host_flag(text: str) -> str:
    """An argparse `type=` for --host: empty text would listen on every interface, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--host is empty, which would listen on every interface; give "
                                         "an address (127.0.0.1, or 0.0.0.0 for every interface)")
    return text


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    server = make_server(args.run_dir, args.host, args.port, args.device)
    if not server.check_host:  # bound to an address others can reach
        print(f"vaekit serve: warning: listening on {args.host}, not on loopback: anyone who can reach "
              "this machine can use the explorer (it has no login).", file=sys.stderr)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("vaekit serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
