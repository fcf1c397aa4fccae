"""`vaekit data list | info NAME | fetch NAME`: where the datasets are and what they hold (NAME: a
registry name, a .npy/.npz array or a folder of images, decoded by the --image-* flags)."""

from __future__ import annotations

import argparse
import json
import sys

from vaekit import config as cfg
from vaekit.commands.flags import text_flag
from vaekit.commands.tables import add_table, given, image_flags
from vaekit.config import TrainConfig
from vaekit.data.folder import ImageOptions
from vaekit.data.load import (
    check_downloaded_only,
    check_mirror,
    describe,
    describe_text,
    fetch_note,
    load_dataset,
)
from vaekit.data.registry import DEFAULT_DATASET, fetch_checked, where_found, where_found_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data", help="list, describe and fetch datasets",
        description="Datasets are looked up in --data-dir, $VAEKIT_DATA, ~/.cache/vaekit/NAME (or under "
        "$XDG_CACHE_HOME) and "
        "/usr/share/datasets/NAME, in that order, else downloaded (SHA-256 verified).",
    )
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    pl = dsub.add_parser("list", help="known datasets and where each was found")
    pl.add_argument("--data-dir", type=text_flag("--data-dir"),
                    help="a directory to look in first (default: none)")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pl.set_defaults(func=run_list)

    pi = dsub.add_parser("info", help="counts, shape, classes, pixel mean, checksums")
    pi.add_argument("name", nargs="?", default=DEFAULT_DATASET,
                    help=f"dataset name, folder of images or .npy/.npz path (default: {DEFAULT_DATASET})")
    pi.add_argument("--data-dir", type=text_flag("--data-dir"),
                    help="directory holding the dataset's files (default: lookup)")
    pi.add_argument("--binarize", choices=("none", "dynamic", "fixed"), default="none",
                    help="report the pixel mean after this binarization (default: none)")
    pi.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    pi.add_argument("--allow-modified", action="store_true",
                    help="describe files that do not match their published SHA-256 instead of "
                    "refusing them (shown as MISMATCH; as $VAEKIT_ALLOW_MODIFIED_DATA=1 does "
                    "everywhere) (default: refuse)")
    pi.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_table(pi, image_flags())
    pi.set_defaults(func=run_info)

    pf = dsub.add_parser("fetch", help="make a dataset available (download if needed)")
    pf.add_argument("name", nargs="?", default=DEFAULT_DATASET,
                    help=f"dataset name (default: {DEFAULT_DATASET})")
    pf.add_argument("--data-dir", type=text_flag("--data-dir"),
                    help="directory holding the dataset's files (default: lookup)")
    pf.add_argument("--mirror", help="base URL (http:// or https://) to download a set not found in "
                    "place from, not the official one; not with --data-dir (default: the official one)")
    pf.set_defaults(func=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    rows = where_found(args.data_dir)
    print(json.dumps({"datasets": rows}, indent=2) if args.json else where_found_text(rows))
    return 0


def image_options(args: argparse.Namespace) -> ImageOptions:
    """The --image-size, --image-channels, --image-fit and --skip-bad flags (None: not given), read
    as `vaekit train` reads them: one used only with another is refused (`config.check_used`)."""
    flags = given(args, image_flags()).get("data", {})
    config = cfg.apply(TrainConfig(), {"data": {"name": args.name, **flags}}, cfg.COMMAND_LINE)
    cfg.check_used(config, TrainConfig(), recorded=False, given=cfg.given_keys({"data": flags}))
    return ImageOptions.of(config.data)


def run_info(args: argparse.Namespace) -> int:
    check_downloaded_only(args.name, [f for f, on in (("--no-download", args.no_download),
                                                      ("--allow-modified", args.allow_modified)) if on])
    ds = load_dataset(args.name, args.data_dir, download=not args.no_download,
                      allow_modified=args.allow_modified or None,  # None: $VAEKIT_ALLOW_MODIFIED_DATA
                      images=image_options(args))
    info = describe(ds, args.binarize)
    print(json.dumps(info, indent=2) if args.json else describe_text(info))
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    check_mirror(args.name, args.mirror, args.data_dir)
    note = fetch_note(args.name, args.data_dir)
    print(note or f"{args.name}: {fetch_checked(args.name, args.data_dir, args.mirror, say_note)}")
    return 0


def say_note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)
