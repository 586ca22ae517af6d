"""A stack: K runs trained together as one fused model on one device, each still its own run.

Every member keeps everything a solo run has (its folder, claim, per-epoch checkpoint, state.json and
tracked run with the same config hash, params and tags, plus ``stack.id``/``stack.size``/``stack.slot``),
because each member *is* a ``TrainingRun`` whose epochs the stack trains (``stack_engine``). A member
finished earlier is skipped, one claimed by another process or with a damaged run file is reported and
left out, one whose loss goes non-finite ends FAILED while the others train on; the same command resumes
every member from its own last checkpoint, so a run started solo continues in a stack and the other way.

What members may differ in: loss and its parameters, noise, seed, lr, weight decay, momentum, gradient
clipping, validation fraction. What they share (``SHARED``): the dataset, model, epochs, batch size,
augmentation, schedule kind, precision and device.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from tqdm.auto import tqdm

from .. import losses
from ..config import RunConfig, config_hash
from ..config.resolve import resolve
from ..data import Dataset, ImageFiles, load_dataset
from ..errors import ConfigError, RunFailed
from ..keys import M, T
from ..tracking import Tracker, make_tracker
from .claim import RunClaim
from .prepare import prepare_data
from .result import RunResult
from .run import OpenRun, TrainingRun
from .runtime import Runtime, select_runtime
from .stack_engine import MemberEpoch, stack_epoch

log = logging.getLogger(__name__)

#: The config fields every member of a stack has alike: one dataset, one architecture, steps in lockstep.
SHARED = ("data.name", "data.data_dir", "data.augment", "model.name", "optim.epochs", "optim.batch_size",
          "optim.schedule", "runtime.precision", "runtime.device", "runtime.channels_last", "tracking.uri",
          "tracking.offline")

#: What a member's outcome is: its result (FINISHED, or SKIPPED when finished earlier), or why it did not train.
Outcome = RunResult | BaseException
EpochHook = Callable[[int, dict[str, float]], None]


def stack_id(digests: Sequence[str]) -> str:
    """The same id for the same members, whatever their order: a re-run resumes the same stack."""
    return hashlib.sha256(",".join(sorted(digests)).encode()).hexdigest()[:12]


def why_solo(cfg: RunConfig) -> ConfigError | None:
    """Why a resolved config cannot be a member of a stack (the one-line error), None when it can."""
    from ..models import can_stack

    if cfg.runtime.nproc_per_node != 1:
        return ConfigError("runtime.nproc_per_node", cfg.runtime.nproc_per_node, "1 in a stack (one device)")
    if cfg.runtime.compile:
        return ConfigError("runtime.compile", True, "false in a stack (its fused model is not compiled)")
    if not can_stack(cfg.model.name):
        return ConfigError("model.name", cfg.model.name, "cnn4 or cnn8 in a stack (models whose layers fuse): "
                           "train it solo")
    if losses.info(cfg.loss.name).kind == "multi-stage":
        return ConfigError("loss.name", cfg.loss.name, "a loss other than NLNL in a stack (NLNL draws its "
                           "complementary labels from torch's global generator, which members would share): "
                           "train it solo")
    return None


def check_stack(cfgs: Sequence[RunConfig]) -> None:
    """Resolved configs that can train as one stack, or a ConfigError naming the first field that cannot."""
    if not cfgs:
        raise ConfigError("stack", "[]", "at least one run")
    first = cfgs[0].flat()
    for cfg in cfgs:
        flat = cfg.flat()
        for name in SHARED:
            if flat[name] != first[name]:
                raise ConfigError(name, f"{first[name]} and {flat[name]} in one stack",
                                  "one value for every member of a stack (shared: " + ", ".join(SHARED) + ")")
        refusal = why_solo(cfg)
        if refusal is not None:
            raise refusal
    digests = [config_hash(cfg) for cfg in cfgs]
    twice = next((d for i, d in enumerate(digests) if d in digests[:i]), None)
    if twice is not None:
        raise ConfigError("stack", f"config {twice} twice", "distinct runs (each member is its own run)")


def stack_key(cfg: RunConfig) -> tuple | None:
    """What a resolved config shares with the members of its stack (configs with equal keys can stack), or
    None when it trains solo (``why_solo``)."""
    if why_solo(cfg) is not None:
        return None
    flat = cfg.flat()
    return tuple(flat[name] for name in SHARED)


def member_bytes(cfg: RunConfig, dataset, bytes_per_value: int = 4) -> int:
    """What one member holds on the device, by rule: its training images (uint8), parameters with their
    gradients, momentum and the fused copy (4x), and the activations autograd keeps for a batch (each leaf
    module's output, twice for the values saved beside it), counted by a forward pass on the meta device."""
    import torch

    from ..models import build_model

    with torch.device("meta"):
        model = build_model(cfg.model.name, dataset.num_classes, dataset.channels, dataset.image_size)
        outputs: list[int] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel()))
                 for m in model.modules() if not list(m.children())]
        model.eval()(torch.empty(1, dataset.channels, dataset.image_size, dataset.image_size))
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for p in model.parameters())
    images = len(dataset.train.labels) * dataset.channels * dataset.image_size ** 2
    return images + bytes_per_value * (4 * params + 2 * cfg.optim.batch_size * sum(outputs))


def memory_budget(device) -> int:
    """The bytes a stack may fill: 80% of the free memory of a CUDA device, half the available RAM on a CPU."""
    import psutil
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    return psutil.virtual_memory().available // 2


def fitting_size(cfg: RunConfig, dataset, budget: int, requested: int) -> int:
    """How many members of ``cfg``'s kind fit ``budget`` (at least one, at most ``requested``)."""
    return max(1, min(requested, budget // max(member_bytes(cfg, dataset), 1)))


class StackRun:
    """Opens every member (skip, resume or start), trains the open ones epoch by epoch as one model, and
    finishes or fails each on its own; ``run`` returns every member's outcome in order."""

    def __init__(self, cfgs: Sequence[RunConfig], tracker: Tracker | None, runtime: Runtime, dataset: Dataset,
                 progress: bool = True, extra_tags: Sequence[dict[str, str]] | None = None,
                 parent_run_ids: Sequence[str | None] | None = None,
                 on_epoch: Sequence[EpochHook | None] | None = None, run_dirs: Sequence[Path | None] | None = None):
        self.cfgs = list(cfgs)
        self.tracker = tracker
        self.runtime = runtime
        self.dataset = dataset
        self.progress = progress
        n = len(self.cfgs)
        self.ident = stack_id([config_hash(cfg) for cfg in self.cfgs])
        self.runs = [
            TrainingRun(cfg, tracker, run_dir=(run_dirs or [None] * n)[slot],
                        parent_run_id=(parent_run_ids or [None] * n)[slot],
                        extra_tags={**((extra_tags or [{}] * n)[slot]), T.STACK_ID: self.ident,
                                    T.STACK_SIZE: str(n), T.STACK_SLOT: str(slot)},
                        progress=False, on_epoch=(on_epoch or [None] * n)[slot])
            for slot, cfg in enumerate(self.cfgs)]

    def run(self) -> list[Outcome]:
        runtime, dataset = self.runtime, self.dataset
        datas = [prepare_data(member, dataset) for member in self.cfgs]
        outcomes: list[Outcome | None] = [None] * len(self.runs)
        with ExitStack() as claims:
            opened: dict[int, OpenRun] = {}
            for slot, (run, data) in enumerate(zip(self.runs, datas)):
                try:
                    claim = claims.enter_context(RunClaim(run.ctx.run_dir))
                    got = run.open(claim, runtime, data)
                except RunFailed as err:  # claimed by another process, or a damaged run file (marked FAILED)
                    log.error("stack %s, member %d: %s", self.ident, slot, err)
                    outcomes[slot] = err
                    continue
                if isinstance(got, RunResult):
                    outcomes[slot] = got
                else:
                    opened[slot] = got
            if opened:
                shared_test = next(iter(opened.values())).test  # one test set for all: read once per step
                for member in opened.values():
                    member.test = shared_test
                self._train(opened, outcomes, runtime)
        return outcomes  # type: ignore[return-value]

    def _train(self, opened: dict[int, OpenRun], outcomes: list[Outcome | None], runtime: Runtime) -> None:
        epochs = self.cfgs[0].optim.epochs
        next_epoch = {slot: member.start for slot, member in opened.items()}
        bar = tqdm(total=epochs - min(next_epoch.values()) + 1, desc=f"stack of {len(opened)}", unit="epoch",
                   disable=None if self.progress else True, leave=False, file=sys.stderr)
        try:
            while opened:
                slots = list(opened)
                members = [MemberEpoch(opened[s].engine, opened[s].train, opened[s].val, opened[s].test,
                                       next_epoch[s], epochs) for s in slots]
                for slot, outcome in zip(slots, stack_epoch(members, runtime)):
                    run, member = self.runs[slot], opened[slot]
                    try:
                        if outcome.failure is not None:
                            raise run.fail(member, outcome.failure)
                        run.record_epoch(member, next_epoch[slot], outcome.metrics)
                        if next_epoch[slot] == epochs:
                            run.close(member)
                            outcomes[slot] = run.finish(member, outcome.matrix)
                            del opened[slot]
                        next_epoch[slot] += 1
                    except Exception as err:  # this member stops (FAILED, or its epoch hook stopped it); the rest go on
                        if not isinstance(err, RunFailed):
                            log.debug("stack %s, member %d stopped", self.ident, slot, exc_info=True)
                        else:
                            log.error("stack %s, member %d: %s", self.ident, slot, err)
                        outcomes[slot] = err
                        run.close(member)
                        opened.pop(slot, None)
                bar.update(1)
                bar.set_postfix_str(accuracies(opened))
        except KeyboardInterrupt:
            for slot, member in opened.items():
                self.runs[slot].interrupted(member)
            raise
        finally:
            for slot, member in opened.items():
                self.runs[slot].close(member)
            bar.close()


def accuracies(opened: dict[int, OpenRun]) -> str:
    """The open members' last test accuracies, for the stack's progress bar."""
    parts = []
    for slot, member in opened.items():
        history = member.recorder.state.history
        if history:
            parts.append(f"{slot}:{100 * history[-1][M.TEST_ACC]:.0f}%")
    return " ".join(parts)


def train_stack(cfgs: Sequence[RunConfig], tracker: Tracker | None = None, progress: bool = True,
                max_members: int | None = None, **per_member) -> list[Outcome]:
    """Train (or resume, or skip when finished) the runs of ``cfgs`` as one stack on one device; each
    member's outcome in order: its RunResult, or the error that stopped it (RunFailed, RunClaimed, ...).

    ``per_member`` lists (``extra_tags``, ``parent_run_ids``, ``on_epoch``, ``run_dirs``) go with the members in order. When
    the members do not fit the device's memory (``fitting_size``) or ``max_members``, they train as several
    stacks, one after the other."""
    resolved = [resolve(cfg) for cfg in cfgs]
    check_stack(resolved)
    cfg = resolved[0]
    runtime = select_runtime(cfg.runtime)
    dataset = load_dataset(cfg.data.name, cfg.data.data_dir, download=cfg.data.download)
    if isinstance(dataset.train, ImageFiles):
        raise ConfigError("data.name", cfg.data.name, "a dataset held in memory in a stack (files are read by "
                          "DataLoader workers per run): train it solo")
    if tracker is None and not cfg.tracking.offline:
        tracker = make_tracker(cfg.tracking.uri)
    if tracker is not None:
        tracker.check()  # fail fast, before any claim or checkpoint exists
    size = fitting_size(cfg, dataset, memory_budget(runtime.device), max_members or len(resolved))
    if size < len(resolved):
        log.info("%d runs as stacks of %d (what fits %s)", len(resolved), size, runtime.device)
    outcomes: list[Outcome] = []
    for first in range(0, len(resolved), size):
        part = slice(first, first + size)
        kwargs = {key: list(values)[part] for key, values in per_member.items() if values is not None}
        outcomes += StackRun(resolved[part], tracker, runtime, dataset, progress, **kwargs).run()
    return outcomes
