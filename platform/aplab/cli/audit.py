"""``aplab audit LOSS``: is a loss symmetric, bounded, finite, and what does the theory then guarantee?"""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from .flags import Subcommands

FORMATS = ("text", "json")


def loss_parameters(items: list[str]) -> dict[str, object]:
    """``--set a=1.5`` (or ``loss.a=1.5``) -> {"a": 1.5}; values parsed as YAML, and "1e-6" as a number
    (YAML 1.1 reads exponents without a dot as strings)."""
    from ..config import parse_override, yaml_number

    params: dict[str, object] = {}
    for item in items:
        key, value = parse_override(item)
        params[key.removeprefix("loss.")] = yaml_number(value)
    return params


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit.core import audit

    if args.format not in FORMATS:
        raise ConfigError("--format", args.format, "text or json")
    params = loss_parameters(args.set)
    report = audit(args.loss, args.classes, params=params, fidelity=args.fidelity, kind=args.kind)
    rows = None
    if args.probe:
        from ..audit.probe import probe

        rows = probe(args.loss, params, args.fidelity, epochs=args.epochs, tracking_uri=args.tracking_uri,
                     workdir=args.workdir)
    if args.format == "json":
        found = report.to_dict()
        if rows is not None:
            from ..audit.probe import short_probe_note

            found["probe"] = [row.to_dict() for row in rows]
            found["probe_note"] = short_probe_note(args.epochs)
        print(json.dumps(found))
    else:
        from ..audit.probe import render

        print(report.render() if rows is None else report.render() + "\n" + render(rows, args.epochs))
    return 0 if report.sound else 1  # a failed check never ends in success


def register(subparsers: Subcommands) -> None:
    """Add ``aplab audit``."""
    audit = subparsers.add_parser(
        "audit", help="check a loss against the theory (symmetric? bounded? finite?) on float64 logits",
        description="Evaluate a loss on random and extreme float64 logits: is its sum over labels constant "
                    "(symmetric, Ma et al. 2020), is it bounded, are values and gradients finite, and what "
                    "noise tolerance the theorems then guarantee.")
    audit.add_argument("loss", metavar="LOSS",
                       help="a registered loss name (see `aplab losses`) or module:attr, your own loss: a callable "
                            "(logits [N, K], targets [N]) -> per-sample losses [N], or an nn.Module class taking "
                            "num_classes")
    audit.add_argument("--classes", type=int, default=10, help="number of classes K (default 10)")
    audit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter of a registered loss, e.g. --set q=0.7 (repeatable)")
    audit.add_argument("--fidelity", default="code", help="code (default) or paper, for registered losses")
    audit.add_argument("--kind", help="declare your loss's kind (active, passive, ...); values cannot decide it")
    audit.add_argument("--format", default="text", help="text (default) or json (one object)")
    audit.add_argument("--probe", action="store_true",
                       help="also train on the embedded digits, clean and at 60%% symmetric noise, beside CE "
                            "(tracked as MLflow runs in experiment aplab-audit-probe)")
    audit.add_argument("--epochs", type=int, default=10, help="epochs of each probe run (default 10; fewer cannot show CE memorising)")
    audit.add_argument("--tracking-uri", help="MLflow tracking URI of the probe runs")
    audit.add_argument("--workdir", default="aplab_runs", help="folder of the probe runs' checkpoints")
    audit.set_defaults(handler=cmd_audit)
