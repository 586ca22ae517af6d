"""What a run records about itself at its start: its tags, its dataset inputs and its fresh state."""

from __future__ import annotations

from ..config import RunConfig
from ..distributed import SINGLE, Rank
from ..keys import P_REALISED_NOISE_RATE, P_TRAIN_SIZE, P_VAL_SIZE, T
from ..placement import placement_tags
from ..tracking import DatasetRecord
from ..version import code_version
from .context import RunContext
from .prepare import PreparedData, labels_digest
from .runtime import Runtime
from .state import RunState


#: Short noise kinds in run names: MLflow's run lists cut names at about 20 characters.
NOISE_SHORT = {"none": "clean", "symmetric": "sym", "symmetric_uniform": "symu", "asymmetric": "asym",
               "pairflip": "pair", "instance": "inst", "human": "", "human_like": "hlike"}


def run_name(cfg: RunConfig) -> str:
    """A run's name in the store when ``tracking.run_name`` is unset: the loss and the seed first, so both survive
    the UI's truncation, then the noise and the dataset: ``nce+rce s0 sym0.6 digits``."""
    kind, _, rest = cfg.noise.spec.partition(":")
    noise = NOISE_SHORT.get(kind, kind) + rest.replace(":", "-")
    return f"{cfg.loss.name} s{cfg.runtime.seed} {noise} {cfg.data.name}"


def where_tags(runtime: Runtime, rank: Rank = SINGLE, backend: str | None = None) -> dict[str, str]:
    """Where and on how many processes the run trains: set at its start and again at each resume (a requeued
    Slurm task, another host or world size), so the tags say where it last trained."""
    return {T.WORLD_SIZE: str(rank.world_size), T.THREADS: str(runtime.threads),
            **({T.BACKEND: backend} if backend else {}),
            **placement_tags(runtime.device)}


def run_tags(cfg: RunConfig, digest: str, runtime: Runtime, rank: Rank = SINGLE,
             backend: str | None = None) -> dict[str, str]:
    return {**where_tags(runtime, rank, backend),
        T.DATASET: cfg.data.name, T.MODEL: str(cfg.model.name), T.LOSS: cfg.loss.name, T.NOISE: cfg.noise.spec,
        T.SEED: str(cfg.runtime.seed), T.FIDELITY: cfg.loss.fidelity, T.CONFIG_HASH: digest,
        T.CODE_VERSION: code_version(), T.VAL_LABELS: "clean" if cfg.data.clean_val else "noisy",
        T.PRECISION: runtime.precision, T.DEVICE: str(runtime.device),
    }


def dataset_records(cfg: RunConfig, data: PreparedData) -> list[DatasetRecord]:
    """The run's dataset inputs: noisy training labels, validation labels (noisy or clean) and the test set."""
    name, source = cfg.data.name, f"aplab:{cfg.data.name}"
    records = [DatasetRecord(f"{name}-train-{cfg.noise.spec}", data.labels_digest, source, int(data.noisy.labels.size))]
    if data.val_idx.size:
        val_labels = (data.dataset.train.labels if data.clean_val else data.noisy.labels)[data.val_idx]
        kind = "clean" if data.clean_val else cfg.noise.spec
        records.append(DatasetRecord(f"{name}-val-{kind}", labels_digest(val_labels), source, int(val_labels.size),
                                     context="validation"))
    test_labels = data.dataset.test.labels
    records.append(DatasetRecord(f"{name}-test", labels_digest(test_labels), source, int(test_labels.size),
                                 context="test"))
    return records


def fresh_state(ctx: RunContext, data: PreparedData, runtime: Runtime, parent_run_id: str | None,
                extra_tags: dict[str, str]) -> RunState:
    """The state.json of a run about to train its first epoch (no tracked run yet)."""
    cfg = ctx.cfg
    tags = {**run_tags(cfg, ctx.digest, runtime, ctx.rank, ctx.backend), **extra_tags}
    return RunState(
        config_hash=ctx.digest, tracking_uri=ctx.uri, experiment=cfg.tracking.experiment,
        run_name=cfg.tracking.run_name or run_name(cfg), parent_run_id=parent_run_id, tags=tags,
        params={**cfg.flat(), P_REALISED_NOISE_RATE: data.noisy.rate, **data.noisy.provenance,
                P_TRAIN_SIZE: len(data.train_idx), P_VAL_SIZE: len(data.val_idx)},
        datasets=[record.__dict__ for record in dataset_records(cfg, data)],
    )
