"""``aplab noise``: apply a noise spec to a dataset's training labels, without training, and show what it does.

Prints the realised noise rate, the per-class rates and the largest confusions (text or JSON), and
writes the realised transition matrix as a heat-map PNG to ``--out``. The labels are those a run with
the same dataset, spec, seed and sampler trains on.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .flags import TRAIN_FLAGS, Subcommands

FORMATS = ("text", "json")
TOP_CONFUSIONS = 10


def noise_summary(dataset: str, spec: str, seed: int, data_dir: str | None = None, file: str | None = None,
                  sampler: str | None = None) -> tuple[dict[str, Any], Any]:
    """The realised noise of ``spec`` on ``dataset``'s training labels: a JSON-ready summary, and the NoisyLabels."""
    from .. import noise
    from ..data import load_dataset
    from ..data.sources import DATASETS

    if dataset not in DATASETS:
        raise DATASETS.unknown(dataset, "dataset")
    normalised = noise.check_config(spec, dataset, sampler=sampler, file=file)
    loaded = load_dataset(dataset, data_dir)
    noisy = noise.corrupt_training_set(loaded, normalised, seed, data_dir=data_dir, file=file, sampler=sampler)
    clean = loaded.train.labels
    counts = [int((clean == c).sum()) for c in range(loaded.num_classes)]
    per_class = [float(noisy.flipped[clean == c].mean()) if n else 0.0 for c, n in enumerate(counts)]
    t = noisy.transition
    off_diagonal = [(t[i, j], i, j) for i in range(len(t)) for j in range(len(t)) if i != j and t[i, j] > 0]
    confusions = [{"true": int(i), "noisy": int(j), "true_name": loaded.class_names[i],
                   "noisy_name": loaded.class_names[j], "rate": float(rate),
                   "count": int(((clean == i) & (noisy.labels == j)).sum())}
                  for rate, i, j in sorted(off_diagonal, key=lambda x: (-x[0], x[1], x[2]))[:TOP_CONFUSIONS]]
    summary = {"dataset": dataset, "spec": normalised, "seed": seed, "sampler": sampler,
               "num_samples": int(clean.size), "noise_rate": noisy.rate, "per_class": per_class,
               "class_sizes": counts, "class_names": list(loaded.class_names), "largest_confusions": confusions,
               "transition": t.tolist(), "provenance": dict(noisy.provenance)}
    return summary, noisy


def render_text(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines."""
    lines = [f"{summary['dataset']} {summary['spec']} (seed {summary['seed']}"
             + (f", {summary['sampler']} sampler" if summary["sampler"] else "") + f"): "
             f"{100 * summary['noise_rate']:.2f}% of {summary['num_samples']} training labels are wrong"]
    lines += [f"  {key}: {value}" for key, value in summary["provenance"].items()]
    lines.append("per class (true class: share of its labels that are wrong):")
    names = summary["class_names"]
    lines += [f"  {c:>3} {'' if names[c] == str(c) else names[c]:<16} {100 * rate:6.2f}%  of {n}"
              for c, (rate, n) in enumerate(zip(summary["per_class"], summary["class_sizes"]))]
    confusions = summary["largest_confusions"]
    lines.append("largest confusions (true -> noisy label):" if confusions else "no label changed class")
    lines += [f"  {x['true_name']} -> {x['noisy_name']}: {100 * x['rate']:.2f}% of {x['true_name']} ({x['count']})"
              for x in confusions]
    return "\n".join(lines)


def cmd_noise(args: argparse.Namespace) -> int:
    """Apply the spec, print the summary, write the heat-map when --out is given."""
    if args.seed < 0:
        raise ConfigError("--seed", args.seed, "an integer >= 0")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError("--out", args.out, "a folder (this is a file)")
    summary, noisy = noise_summary(args.dataset, args.spec, args.seed, args.data_dir, args.file, args.sampler)
    if args.out is not None:
        from ..plotting.run import plot_matrix

        spec = re.sub(r"[^A-Za-z0-9.=-]", "_", summary["spec"])  # a user map's '>' and ',' too
        name = f"transition-{summary['dataset']}-{spec}-s{args.seed}.png"
        path = plot_matrix(noisy.transition, Path(args.out) / name,
                           f"{summary['dataset']} {summary['spec']}: realised T ({100 * noisy.rate:.1f}% wrong)",
                           "noisy label", "true class")
        summary["heatmap"] = str(path)
    if args.format == "json":
        print(json.dumps(summary))
    else:
        print(render_text(summary) + (f"\ntransition heat-map: {summary['heatmap']}" if "heatmap" in summary else ""))
    return 0


def register(commands: Subcommands) -> None:
    """Add the ``noise`` sub-command (called by ``aplab.cli``)."""
    parser = commands.add_parser("noise", help="apply a noise spec to a dataset's training labels (no training): "
                                 "realised rate, per-class rates, confusions, transition heat-map",
                                 description=__doc__.replace("``", ""))
    parser.add_argument("dataset", help="a dataset name (`aplab train --help` lists them; this help imports no torch)")
    parser.add_argument("spec", help="noise spec, e.g. symmetric:0.4, asymmetric:0.3, instance:0.2, human:aggre, "
                        "human_like:worst, none")
    parser.add_argument("--seed", type=int, default=0, help="the run seed the noise is drawn with (default 0)")
    parser.add_argument("--data-dir", help=TRAIN_FLAGS["data-dir"][2])
    parser.add_argument("--file", help="a CIFAR-N label file (default <data-dir>/cifar-n/CIFAR-10_human.pt or "
                        "CIFAR-100_human.pt); what --set noise.file= sets for a run")
    parser.add_argument("--sampler", choices=["official"], help="draw as the reference code does "
                        "(noise.sampler=official); default: aplab's exact per-class counts")
    parser.add_argument("--out", help="folder for the transition heat-map PNG (none written without it)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json")
    parser.set_defaults(handler=cmd_noise)
