"""Speed of every loss in the zoo: forward+backward time on [N, K] logits, as a ratio to plain cross-entropy.

Checks the claim of the loss issue: a loss computes (log-)softmax once per call, shared by both terms of a
combination, so forward+backward of nce+rce on [4096, 100] logits costs at most 2x F.cross_entropy on CPU.
Exits 1 if nce+rce is slower than that or calls (log-)softmax more than once per forward.

    python benchmarks/bench_losses.py --batch 4096 --classes 100 --repeats 100 --device cpu --threads 2
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))  # run without installing

from aplab.losses import available, build  # noqa: E402
from aplab.losses.api import PAPER_COMBINATIONS  # noqa: E402
from aplab.losses.zoo import SUCCESSOR_COMBINATIONS  # noqa: E402

BASELINE = "F.cross_entropy"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
CHECKED = "nce+rce"
MAX_RATIO = 2.0
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Row:
    """One loss's timing: median milliseconds per forward+backward and its ratio to the baseline."""

    name: str
    ms: float
    ratio: float
    softmax_calls: int | None


class SoftmaxCounter(TorchFunctionMode):
    """Counts every log_softmax/softmax call (functional, torch.* or Tensor method) made while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        name = getattr(func, "__name__", "")
        if name in ("log_softmax", "softmax", "_log_softmax", "_softmax"):
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))


def count_softmax_calls(loss: LossFn, logits: torch.Tensor, targets: torch.Tensor) -> int:
    """Number of (log-)softmax calls in one forward of ``loss``."""
    with SoftmaxCounter() as counter:
        loss(logits, targets)
    return sum(counter.calls.values())


def losses(num_classes: int, fidelity: str) -> dict[str, LossFn]:
    """The baseline, every registered loss, every paper combination and the successors' pairs, by name."""
    table: dict[str, LossFn] = {BASELINE: F.cross_entropy}
    for name in [*available(), *PAPER_COMBINATIONS, *SUCCESSOR_COMBINATIONS]:
        table[name] = build(name, num_classes, fidelity=fidelity)
    return table


def retain_freed_memory() -> bool:
    """Make glibc keep freed [N, K] buffers instead of returning them to the OS.

    With the default malloc every new 1.6 MB tensor is a fresh mmap that page-faults on first touch; on a VM
    that costs as much as the arithmetic and is noisy, and it inflates the baseline too (so it flatters
    the ratios). Returns False where mallopt is unavailable (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that perf_counter measures it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_all(table: dict[str, LossFn], logits: torch.Tensor, targets: torch.Tensor,
             warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per forward+backward for each loss; losses are interleaved round-robin so that
    drift of the machine (frequency, other load) hits every loss alike and the ratios stay fair."""
    samples: dict[str, list[float]] = {name: [] for name in table}
    for round_ in range(warmup + repeats):
        for name, loss in table.items():
            logits.grad = None
            sync(logits.device)
            start = time.perf_counter()
            loss(logits, targets).backward()
            sync(logits.device)
            if round_ >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """What ran the benchmark: CPU, cores, torch version, threads (and GPU)."""
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (f"CPU {cpu_model()} ({platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, python {platform.python_version()}{gpu}")


def load_average() -> str:
    """1, 5 and 15 minute load averages: above the core count, other processes disturbed the timings."""
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def markdown(rows: list[Row], batch: int, classes: int) -> str:
    """The results as a Markdown table (for benchmarks/RESULTS.md)."""
    lines = [f"| loss | ms per fwd+bwd [{batch}, {classes}] | ratio to {BASELINE} | (log-)softmax calls per forward |",
             "|---|---:|---:|---:|"]
    for row in rows:
        calls = "fused (C++)" if row.softmax_calls is None else str(row.softmax_calls)
        lines.append(f"| `{row.name}` | {row.ms:.3f} | {row.ratio:.2f} | {calls} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096, help="N, rows of the logits")
    parser.add_argument("--classes", type=int, default=100, help="K, columns of the logits")
    parser.add_argument("--repeats", type=int, default=100, help="timed forward+backward calls per loss")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per loss first")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--fidelity", choices=("code", "paper"), default="code", help="constants of the losses")
    parser.add_argument("--malloc", choices=("retain", "system"), default="retain",
                        help="retain: glibc keeps freed buffers (no page faults, stable); system: glibc defaults")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for but CUDA is not available", file=sys.stderr)
        return 2
    malloc = "system"
    if args.malloc == "retain":
        malloc = "retain (mallopt)" if retain_freed_memory() else "system (mallopt unavailable)"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    logits = (3 * torch.randn(args.batch, args.classes, generator=generator)).to(device).requires_grad_()
    targets = torch.randint(0, args.classes, (args.batch,), generator=generator).to(device)

    table = losses(args.classes, args.fidelity)
    before = load_average()
    seconds = time_all(table, logits, targets, args.warmup, args.repeats)
    base = seconds[BASELINE]
    rows = [Row(name, 1e3 * s, s / base,
                None if name == BASELINE else count_softmax_calls(table[name], logits, targets))
            for name, s in seconds.items()]

    print(f"machine: {machine(device)}, device {device}, malloc {malloc}")
    print(f"{before} before, {load_average()} after the timings (above {os.cpu_count()} cores: disturbed)")
    print(f"median of {args.repeats} forward+backward calls after {args.warmup} warm-up, losses interleaved, "
          f"float32 logits [{args.batch}, {args.classes}], reduction=mean, fidelity={args.fidelity}\n")
    print(markdown(rows, args.batch, args.classes))

    checked = next(row for row in rows if row.name == CHECKED)
    print(f"\nsoftmax sharing: {CHECKED} calls (log-)softmax {checked.softmax_calls} time(s) per forward "
          f"({'once, shared by both terms' if checked.softmax_calls == 1 else 'NOT once'})")
    print(f"claim: {CHECKED} costs {checked.ratio:.2f}x {BASELINE} (limit {MAX_RATIO:.1f}x) -> "
          f"{'PASS' if checked.ratio <= MAX_RATIO else 'FAIL'}")
    return 0 if checked.ratio <= MAX_RATIO and checked.softmax_calls == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
