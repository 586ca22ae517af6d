"""One run on N local processes, started here through PyTorch's elastic launcher (what torchrun runs).

``train()`` calls ``launch`` when ``runtime.nproc_per_node > 1`` and no process group exists yet, so the
CLI, a pipeline worker or a study trial trains one run on N GPUs with one call. The ranks are spawned
processes that die with this one; when any of them dies the elastic agent stops the others. Rank 0
sends its epochs (for ``on_epoch``) and, when it fails, its error back here over a queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..config import ResolvedConfig
from ..distributed import ignore_requeue_signal, rank_from_environment
from ..errors import AplabError, ConfigError, RunFailed
from ..tracking import make_tracker, require_shared_store
from .group import portable, rebuild
from ..placement import TaskScheduler, current_scheduler, use_scheduler

EpochHook = Callable[[int, dict[str, float]], None]


class GroupFailed(RunFailed):
    """A rank of a distributed run died (killed, out of memory, a crash) without an error of its own to report."""

    def __init__(self, detail: str):
        super().__init__(f"a process of the distributed run stopped ({detail}); the run keeps its last checkpoint: "
                         "run the same command again to resume it")


class EpochRelay:
    """Rank 0's ``on_epoch``: hands each epoch to the launching process and raises what its hook raised."""

    def __init__(self, events, replies):
        self.events, self.replies = events, replies

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.events.put(("epoch", epoch, metrics))
        answer = self.replies.get()
        if answer is not None:
            raise rebuild(answer)


@dataclass
class Outcome:
    """What the launching process learnt from rank 0 while the group ran."""

    error: BaseException | None = None
    hook_error: BaseException | None = None  # what on_epoch raised: the run's outcome whatever rank 0 then did


def relay(events, replies, on_epoch: EpochHook | None, outcome: Outcome) -> None:
    """In the launching process: call ``on_epoch`` for rank 0's epochs, answer with what it raised (its
    original exception is the one ``launch`` raises), keep rank 0's error; stop at "done"."""
    while True:
        message = events.get()
        if message[0] == "done":
            return
        if message[0] == "error":
            outcome.error = outcome.error or rebuild(message[1])
            continue
        _, epoch, metrics = message
        try:
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            replies.put(None)
        except BaseException as err:  # e.g. KeyboardInterrupt or optuna.TrialPruned: rank 0 raises it too
            outcome.error = outcome.hook_error = err
            replies.put(portable(err))


def run_rank(cfg: ResolvedConfig, uri: str | None, options: dict[str, Any], relay_epochs: bool, events, replies,
             cli_logging: bool, scheduler: TaskScheduler | None = None):
    """The entry point of every rank: rank 0 tracks (a tracker rebuilt from ``uri``) and reports; the
    others train their slices and return None. ``cli_logging``: the launching process shows aplab's
    diagnostics (the CLI does), so the ranks write them too, as the CLI does ("[aplab] ..."). ``scheduler``:
    the launching process's (``placement.use_scheduler``), so rank 0's claim and tags see the same task."""
    from ..processes import cores_share, die_with_parent
    from .run import TrainingRun

    ignore_requeue_signal()  # Slurm's requeue warning reaches every rank: the launching process acts on it
    die_with_parent()
    use_scheduler(scheduler)
    if cli_logging:
        from ..log import install_log_handler

        install_log_handler()
    rank = rank_from_environment()
    if rank is None:  # not an assert: it must hold under python -O too
        raise RuntimeError("run_rank: started outside the elastic agent (RANK and WORLD_SIZE unset)")
    import torch

    if "OMP_NUM_THREADS" not in os.environ:  # the ranks share the cores this process may run on
        torch.set_num_threads(cores_share(rank.world_size))
    if not rank.is_main:
        return TrainingRun(cfg, None, rank=rank, **{**options, "progress": False}).run()
    tracker = make_tracker(uri) if uri is not None else None
    hook = EpochRelay(events, replies) if relay_epochs else None
    try:
        return TrainingRun(cfg, tracker, rank=rank, on_epoch=hook, **options).run()
    except BaseException as err:
        events.put(("error", portable(err)))
        events.close()
        events.join_thread()  # delivered before this process exits and the agent stops the others
        raise


def check_devices(cfg: ResolvedConfig) -> None:
    """On CUDA each rank takes one of the GPUs this process sees: refuse more ranks than GPUs before any starts."""
    import torch

    from .runtime import select_runtime

    if select_runtime(cfg.runtime).device.type != "cuda":
        return
    count = torch.cuda.device_count()
    if cfg.runtime.nproc_per_node > count:
        raise ConfigError("runtime.nproc_per_node", cfg.runtime.nproc_per_node,
                          f"at most {count}, the GPUs this process sees (CUDA_VISIBLE_DEVICES), or runtime.device=cpu")


def check_store(cfg: ResolvedConfig, uri: str | None) -> None:
    """Rank 0 rebuilds the tracker from ``uri``: an in-memory store would live in rank 0 alone, out of the
    caller's sight while the run reported FINISHED, so refuse it before any rank starts."""
    require_shared_store(uri, "runtime.nproc_per_node", cfg.runtime.nproc_per_node,
                         "1 with a memory:// tracking store (it lives in one process)")


def launch(cfg: ResolvedConfig, uri: str | None, on_epoch: EpochHook | None = None, **options) -> Any:
    """Train ``cfg`` on ``cfg.runtime.nproc_per_node`` local ranks; rank 0's RunResult, or its error raised
    here (GroupFailed when a rank died without one)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_store(cfg, uri)
    check_devices(cfg)
    spawn = multiprocessing.get_context("spawn")
    events, replies = spawn.Queue(), spawn.Queue()
    outcome = Outcome()
    listener = threading.Thread(target=relay, args=(events, replies, on_epoch, outcome), daemon=True)
    listener.start()
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=cfg.runtime.nproc_per_node,
                          run_id=f"aplab-{uuid.uuid4().hex[:12]}", rdzv_backend="c10d", rdzv_endpoint="localhost:0",
                          max_restarts=0, start_method="spawn")
    failure: ChildFailedError | None = None
    try:
        cli_logging = bool(logging.getLogger("aplab").handlers)  # diagnostics shown here: shown by the ranks too
        results = elastic_launch(config, run_rank)(cfg, uri, options, on_epoch is not None, events, replies,
                                                   cli_logging, current_scheduler())
    except ChildFailedError as err:
        failure = err
    except SignalException as err:  # the agent got a signal and stopped the ranks (it sent them the same one)
        if err.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None  # Ctrl-C: rank 0 marked the run KILLED; the same command resumes
        raise GroupFailed(f"the launcher got {signal.Signals(err.sigval).name}") from None
    finally:
        events.put(("done",))
        listener.join()
        for queue in (events, replies):
            queue.close()
    if outcome.error is not None and (isinstance(outcome.error, REPORTED) or outcome.error is outcome.hook_error):
        raise outcome.error  # rank 0's own verdict (a failed run, a bad input) or what on_epoch raised
    if failure is not None:
        raise GroupFailed(describe(failure, outcome.error)) from None
    return results[0]


#: Errors of rank 0 that are the run's outcome, raised as they are; any other (a broken connection to a
#: rank that died, a crash) is reported as the group's failure.
REPORTED = (AplabError, KeyboardInterrupt)


def describe(failure, rank0_error: BaseException | None) -> str:
    """Which rank stopped first and how, in a few words (and rank 0's error when it was rank 0)."""
    rank, first = failure.get_first_failure()
    how = (f"killed by {signal.Signals(-first.exitcode).name}" if first.exitcode < 0
           else f"exit code {first.exitcode}")
    said = ""
    if rank == 0 and rank0_error is not None:
        said = f": {type(rank0_error).__name__}: {' '.join(str(rank0_error).split())[:200]}"
    return f"rank {rank} {how}{said}"
