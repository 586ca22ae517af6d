"""``train(cfg)``: the one call that trains a run, in this process, as one rank of torchrun's group, or
by launching its ranks here (``runtime.nproc_per_node > 1``)."""

from __future__ import annotations

import os

from ..config import RunConfig
from ..config.resolve import resolve
from ..distributed import SINGLE, rank_from_environment
from ..processes import die_with_parent
from ..tracking import Tracker, default_uri, make_tracker
from ..writable import require_writable
from .launch import launch
from .result import RunResult
from .run import TrainingRun

ELASTIC_AGENT = "TORCHELASTIC_RUN_ID"  # set by torchrun's agent in every process it starts


def train(cfg: RunConfig, tracker: Tracker | None = None, **kwargs) -> RunResult | None:
    """Train (or resume, or skip if finished, or retry from scratch if FAILED) one run; resolves the config once.

    The tracker defaults to the config's URI. Raises RunFailed (NonFiniteLoss, RunFileCorrupt) after
    marking the run FAILED; the same call then trains it again from scratch.

    Distributed: in a process torchrun started (RANK, WORLD_SIZE set) this is one rank of the run, and
    ranks other than 0 return None. Otherwise ``runtime.nproc_per_node > 1`` launches that many ranks
    here (PyTorch's elastic launcher) and returns rank 0's result: rank 0 rebuilds the tracker from its
    URI, ``on_epoch`` is called here with rank 0's epochs (what it raises stops the run as it would in
    one process), ``extra_tags``, ``run_dir``, ``parent_run_id`` and ``progress`` reach rank 0.
    """
    resolved = resolve(cfg)
    require_writable(resolved.tracking.workdir, "tracking.workdir")  # before a tracker, a rank or a run folder
    rank = rank_from_environment()
    if rank is None and resolved.runtime.nproc_per_node > 1:
        uri = None if resolved.tracking.offline else (tracker.uri if tracker is not None else default_uri(
            resolved.tracking.uri))
        return launch(resolved, uri, **kwargs)
    rank = rank or SINGLE
    if rank.distributed and ELASTIC_AGENT in os.environ:
        die_with_parent()  # torchrun's agent stops the group when a rank dies; this rank dies with the agent
    if not rank.is_main:
        tracker = None  # rank 0 alone talks to the tracker
        kwargs["progress"] = False
    elif tracker is None and not resolved.tracking.offline:
        tracker = make_tracker(resolved.tracking.uri)
    return TrainingRun(resolved, tracker, rank=rank, **kwargs).run()
