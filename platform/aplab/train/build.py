"""Building a run's engine: the model (on its device, its head in float32), the loss, SGD, the LR schedule,
and the DistributedDataParallel wrapper of a distributed run."""

from __future__ import annotations

import logging
import warnings

import torch

from .. import losses
from ..config import RunConfig, loss_kwargs
from ..distributed import Rank
from ..models import build_model, float32_head
from ..schedules import build_schedule
from .engine import Engine
from .prepare import PreparedData
from .runtime import Runtime, seed_everything, seed_rank

log = logging.getLogger(__name__)


def build_engine(cfg: RunConfig, data: PreparedData, runtime: Runtime, rank: Rank) -> Engine:
    """Everything one epoch needs, built in the order that fixes the draws of the initialisation (seeded here)."""
    dataset = data.dataset
    seed_everything(cfg.runtime.seed)
    model = build_model(cfg.model.name, dataset.num_classes, dataset.channels, dataset.image_size)
    model = float32_head(model).to(runtime.device, runtime.dtype)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = losses.build(cfg.loss.name, dataset.num_classes, fidelity=cfg.loss.fidelity, **loss_kwargs(cfg))
    loss_fn.observe_labels(data.noisy.labels[data.train_idx])
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    scheduler = build_schedule(cfg.optim.schedule, optimizer, cfg.optim)
    compiled = torch.compile(model) if cfg.runtime.compile else None
    trainer = distribute(model, runtime, rank, cfg.runtime.sync_bn)
    if trainer is not None and compiled is not None:
        trainer = torch.compile(trainer)
    seed_rank(cfg.runtime.seed, rank)  # every rank built the same model; now each draws its own
    return Engine(model, loss_fn, optimizer, scheduler, runtime, cfg.optim.grad_clip, dataset.num_classes, compiled,
                  trainer, rank)


def distribute(model: torch.nn.Module, runtime: Runtime, rank: Rank, sync_bn: bool) -> torch.nn.Module | None:
    """The DistributedDataParallel module that trains ``model`` in a distributed run (None in one process).

    SyncBatchNorm (``runtime.sync_bn``) replaces ``model``'s BatchNorm layers in place, so ``model`` (what
    checkpoints hold) keeps BatchNorm's state-dict keys: a checkpoint resumes under any world size.
    PyTorch's SyncBatchNorm runs on GPUs only: on CPU each rank normalises with its slice's statistics."""
    if not rank.distributed:
        return None
    from torch.nn.parallel import DistributedDataParallel

    # DDP warns once per process when a gradient's strides differ from its bucket's along a dimension of
    # size 1 only (the first convolution of a one-channel input), which costs nothing: not news to a user
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    on_cuda = runtime.device.type == "cuda"
    if sync_bn and on_cuda:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn and rank.is_main:
        log.info("runtime.sync_bn: PyTorch's SyncBatchNorm needs GPUs; on CPU each rank's BatchNorm uses "
                 "the statistics of its slice of the batch")
    return DistributedDataParallel(model, device_ids=[runtime.device] if on_cuda else None,
                                   gradient_as_bucket_view=True)
