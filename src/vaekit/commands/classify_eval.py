"""`vaekit classify eval RUN_DIR`: the test accuracy of a classifier run with its 95% interval, the
per-class table, the network's cost, and the most confidently wrong images; written to
RUN_DIR/eval.json (`vaekit.classify.evaluate`) and printed as text (or JSON with --json)."""

from __future__ import annotations

import argparse
from typing import Any

from vaekit.classify.evaluate import evaluate_classifier
from vaekit.commands.evaluate import print_eval
from vaekit.commands.flags import int_flag, run_dir_argument, text_flag
from vaekit.distributed import place
from vaekit.errors import ConfigError

MISTAKES_PRINTED = 5


KEPT = ("help", "data_dir", "json")  # the options of `vaekit classify` that `eval` takes too


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    """Add `eval` to the ACTION subparsers of `vaekit classify` (`parent`), whose other options
    (`--epochs 3 eval RUN`: argparse takes them, eval would not read them) it refuses."""
    p = sub.add_parser(
        "eval", help="test accuracy of a classifier run with its 95%% interval (writes eval.json)",
        description="Evaluate a classifier run's best model (model.safetensors) on its test set: accuracy "
        "with a 95% Wilson score interval, per-class recall and precision, the confusion matrix, the "
        "mean cross-entropy in nats per image, parameters and multiply-adds per image, and the most "
        "confidently wrong images. Writes RUN_DIR/eval.json; `vaekit report RUN_DIR` draws it.")
    p.add_argument("run_dir", metavar="RUN_DIR", type=run_dir_argument,
                   help="a run directory of `vaekit classify`")
    p.add_argument("--data-dir", type=text_flag("--data-dir"),
                   default=argparse.SUPPRESS,  # not to undo `classify --data-dir D eval`
                   help="directory holding the dataset files (default: the run's, then the lookup "
                   "order of `vaekit data`)")
    p.add_argument("--limit", type=int_flag("--limit", 1),
                   help="evaluate only the first N test images (default: all)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,  # nor `classify --json eval`
                   help="print the eval.json object instead of text")
    p.set_defaults(func=run, training_flags={a.dest: (a.option_strings[0], a.default) for a in parent._actions
                                             if a.option_strings and a.dest not in KEPT})


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def headline(result: dict[str, Any]) -> str:
    """'test accuracy 91.23% (95% CI 90.66-91.77%, 10,000 images)'."""
    lo, hi = result["accuracy_ci95"]
    return (f"{result['split']} accuracy {percent(result['accuracy'])} (95% CI {100 * lo:.2f}-"
            f"{100 * hi:.2f}%, {result['images']:,} image{'s' * (result['images'] != 1)})")


def class_table(result: dict[str, Any]) -> str:
    """One line per class: index, name, test images, accuracy (recall) and precision."""
    rows = result["per_class"]
    width = max([len("class")] + [len(f"{r['class']} {r['name']}") for r in rows])
    lines = [f"{'class':<{width}}  {'images':>8}  {'accuracy':>9}  {'precision':>9}"]
    for r in rows:
        label = f"{r['class']} {r['name']}" if r["name"] != str(r["class"]) else str(r["class"])
        lines.append(f"{label:<{width}}  {r['images']:>8,}  {percent(r['accuracy']):>9}  "
                     f"{percent(r['precision']):>9}")
    return "\n".join(lines)


def format_result(result: dict[str, Any]) -> str:
    """The eval.json object as text for people."""
    names = {r["class"]: r["name"] for r in result["per_class"]}
    lines = [f"{headline(result)} of {result['dataset']}",
             f"{result['split']} loss {result['test_loss']:.4f} nats per image (mean cross-entropy)",
             "", class_table(result), "",
             f"network: {result['params']:,} parameters, {result['macs']:,} multiply-adds per image"]
    wrong = result["most_wrong"][:MISTAKES_PRINTED]
    if wrong:
        lines.append("most confidently wrong: " + "; ".join(
            f"#{w['index']} {names[w['true']]} taken for {names[w['predicted']]} "
            f"({percent(w['confidence'])})" for w in wrong))
    lines.append(f"time {result['seconds']:.2f} s")
    return "\n".join(lines)


def refuse_training_flags(args: argparse.Namespace) -> None:
    """A flag of classify's training given with `eval` (before it) is one sentence naming it."""
    flags = [flag for dest, (flag, default) in args.training_flags.items() if getattr(args, dest) != default]
    if flags:
        raise ConfigError(f"{', '.join(flags)} {'is a flag' if len(flags) == 1 else 'are flags'} of "
                          "classifier training, which `vaekit classify eval RUN_DIR` does not use; leave "
                          f"{'it' if len(flags) == 1 else 'them'} out, or train without eval.")
    if place() is not None:  # under torchrun: each rank would evaluate, and lock the run against the others
        raise ConfigError("`vaekit classify eval` runs in one process; run it without torchrun.")


def run(args: argparse.Namespace) -> int:
    refuse_training_flags(args)
    result = evaluate_classifier(args.run_dir, data_dir=args.data_dir, limit=args.limit)
    print_eval(result, args.run_dir, args.json, format_result)
    return 0
