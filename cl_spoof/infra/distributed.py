"""Data-parallel training over processes started by ``torchrun`` (PyTorch DDP).

``torchrun --nproc_per_node N -m cl_spoof run CONFIG`` starts N processes; each
joins the process group (Gloo on CPU, NCCL on GPU), trains the same model on
its shard of every experience through ``DistributedDataParallel`` and scores
its shard of every test experience. What is Avalanche's and what is ours:

- Avalanche 0.6 already shards the training, replay and evaluation data: its
  data loaders use a ``DistributedSampler`` as soon as a process group exists.
  Those samplers are recreated with seed 0 at every epoch, so every epoch (and
  every seed) would see the same order: :class:`DistributedPlugin` seeds them
  per run seed, stage and epoch.
- Avalanche 0.6 does not wrap the model (``DistributedHelper.wrap_model`` is
  not called by its strategies), and ``strategy.model`` must stay the bare
  module because EWC, SI and checkpoints key their tensors by parameter name.
  So the plugin routes only the training forward pass through one DDP wrapper;
  memory passes of GEM/A-GEM and EWC's importance pass use the bare model.
- Consistency across ranks is made, not hoped for: after every experience the
  model's parameters and buffers (BatchNorm statistics drift per rank) and the
  strategy's state (DFWF teacher, EWC importances, replay/GEM/A-GEM memories)
  are broadcast from rank 0, then checked equal on every rank
  (:func:`broadcast_module`, :func:`check_in_sync`; the workflow passes the
  strategy's state in). A-GEM's reference gradient is averaged over ranks.
- Evaluation scores are gathered (:func:`gather_shards`) so the EER of every
  attack is computed over all its trials, as on one process.

Only rank 0 writes files and reports progress. ``train.batch_size`` is the
global mini-batch: each of N ranks takes ``batch_size / N``.

Nothing outside :mod:`cl_spoof.infra` imports this module: workflows, strategies
and metrics reach the other processes through a
:class:`~cl_spoof.infra.context.RunContext`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DistributedSampler

from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.infra.runtime import launched_by_torchrun, process_device, stage_seed

T = TypeVar("T")

_SEED_STRIDE = 7919  # decorrelates the random crops of different ranks


class DistributedError(CLSpoofError):
    """Ranks disagree, or a distributed job is set up wrongly."""


# ----------------------------------------------------------------- process group


def is_distributed() -> bool:
    """Whether a process group of more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Rank on this machine (0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the process that writes files and reports progress."""
    return rank() == 0


def init_from_env(device_name: str, timeout_s: float) -> bool:
    """Join the process group torchrun describes in the environment.

    Gloo on CPU, NCCL on CUDA; every collective gives up after ``timeout_s``
    seconds, so a rank that hangs cannot hold the others forever (a rank that
    crashes is handled sooner by torchrun, which stops the others). Returns
    whether a group of more than one process is now active; a no-op outside
    torchrun or with one process.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    if dist.is_initialized():
        return True
    device = process_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    return True


def shutdown() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(batch_size: int) -> int:
    """This rank's share of the global ``train.batch_size``."""
    n = world_size()
    if batch_size % n:
        raise ConfigError(f"train.batch_size {batch_size} is the global mini-batch and must be "
                          f"divisible by the number of processes ({n})")
    return batch_size // n


def rank_seed(seed: int) -> int:
    """``seed`` on rank 0 (so one process reproduces a single-process run), shifted elsewhere."""
    return seed + _SEED_STRIDE * rank()


# ------------------------------------------------------------- collectives


def broadcast_object(obj: T) -> T:
    """``obj`` of rank 0, on every rank (tensors inside must be on the CPU)."""
    if not is_distributed():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result to every rank.

    A :class:`CLSpoofError` raised by ``fn`` is raised on every rank, so a bad
    ``--out`` or a finished run stops the whole job with one clear message
    instead of leaving the other ranks waiting.
    """
    if not is_distributed():
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    error: CLSpoofError | None = None
    if is_main():
        try:
            outcome = (True, fn())
        except CLSpoofError as exc:
            error, outcome = exc, (False, str(exc))
    ok, value = broadcast_object(outcome)
    if error is not None:
        raise error
    if not ok:
        raise CLSpoofError(f"(from rank 0) {value}")
    return value


def local_main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on local rank 0 of every machine first, then on the other ranks.

    Used for loading data: local rank 0 decodes audio into the machine's cache,
    the others then read the cache instead of racing to write it. The wait uses
    its own Gloo group without a practical timeout (a first cache build of a
    large corpus may take long).
    """
    if not is_distributed():
        return fn()
    patient = cast(dist.ProcessGroup, dist.new_group(backend="gloo", timeout=timedelta(days=7)))
    first = local_rank() == 0
    if not first:
        dist.barrier(group=patient)
    try:
        result = fn()
    finally:
        if first:
            dist.barrier(group=patient)
    dist.destroy_process_group(patient)
    return result


def gather_shards(values: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` per-sample values of a dataset scored in shards, in dataset order.

    Avalanche's evaluation loader gives rank ``r`` the samples ``r, r + N,
    r + 2N, ...`` (PyTorch's ``DistributedSampler`` without shuffling, padded
    with the first samples so every rank has ``ceil(n / N)``). Interleaving the
    gathered shards and dropping the padding restores the dataset order.
    """
    if not is_distributed():
        return values
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, np.asarray(values))
    per_rank = -(-n // world_size())
    sizes = [len(p) for p in parts]
    if any(s != per_rank for s in sizes):
        raise DistributedError(f"expected {per_rank} evaluation scores from every rank for "
                               f"{n} samples, got {sizes}")
    return np.stack(parts, axis=1).reshape(-1, *parts[0].shape[1:])[:n]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over ranks, in place (strategy statistics: sums and counts)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape on every rank) joined along dim 0, in rank order.

    Per-step statistics of the global mini-batch (its labels, its logits): every rank
    then computes the same value from the same numbers.
    """
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (e.g. BatchNorm statistics) to every rank."""
    if not is_distributed():
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def state_digest(module: nn.Module, extra: Any = None) -> str:
    """SHA-1 of every parameter and buffer, in state-dict order, and of ``extra``.

    ``extra`` may nest dicts, lists and tuples of tensors and plain values
    (e.g. a strategy's exported state).
    """
    digest = hashlib.sha1()

    def add(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(str(key).encode())
                add(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        else:
            digest.update(repr(value).encode())

    add(module.state_dict())
    add(extra)
    return digest.hexdigest()


def check_in_sync(module: nn.Module, what: str, extra: Any = None) -> None:
    """Raise :class:`DistributedError` unless all ranks hold the same ``module`` and ``extra``."""
    if not is_distributed():
        return
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, state_digest(module, extra))
    if len(set(digests)) != 1:
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        raise DistributedError(f"{what}: ranks {differ} hold a different model or strategy "
                               "state than rank 0")


# ------------------------------------------------------------------- plugin


class _SeededEpochs:
    """Iterates an Avalanche multi-dataset loader with its ``DistributedSampler``s seeded.

    Avalanche builds fresh samplers (seed 0, epoch 0) for every pass; they are
    set here to ``seed`` (one per sampler) and ``epoch`` before the pass starts.
    Relies on ``MultiDatasetDataLoader._get_loader`` of avalanche-lib 0.6.
    """

    def __init__(self, loader: Any, seed: int, epoch: int) -> None:
        self.loader = loader
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        torch_loader = self.loader._get_loader()
        for k, sampler in enumerate(torch_loader.batch_sampler.samplers):
            inner = sampler.sampler if isinstance(sampler, BatchSampler) else sampler
            if isinstance(inner, DistributedSampler):
                inner.seed = self.seed + k
                inner.set_epoch(self.epoch)
        yield from torch_loader


class DistributedPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Makes any Avalanche strategy train data-parallel (must be the first plugin).

    - training forward passes go through one ``DistributedDataParallel`` wrapper
      of ``strategy.model`` (gradients are averaged over ranks in backward);
    - every epoch's shards are drawn from a permutation seeded by
      ``seed + stage`` and the epoch, identical on every rank;
    - A-GEM's reference gradient is averaged over ranks before it is used;
    - after each experience rank 0's parameters and buffers are broadcast,
      before any other plugin copies the model (DFWF teacher, LwF).
    """

    def __init__(self, device: torch.device, seed: int) -> None:
        super().__init__()
        self.device = device
        self.seed = seed
        self.ddp: DistributedDataParallel | None = None
        self._trainable: tuple[bool, ...] = ()
        self.agem: Any = None  # the strategy's A-GEM plugin, if any

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        from avalanche.training.plugins import AGEMPlugin

        self.agem = next((p for p in strategy.plugins if isinstance(p, AGEMPlugin)), None)
        # DDP reduces the parameters that required gradients when it was built: build a
        # new wrapper when that set changes (``train.trainable`` freezes layers).
        trainable = tuple(p.requires_grad for p in strategy.model.parameters())
        if self.ddp is None or self.ddp.module is not strategy.model or \
                trainable != self._trainable:
            ids = [self.device] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(strategy.model, device_ids=ids)
            self._trainable = trainable
        ddp = self.ddp
        # Instance attribute over SupervisedTemplate.forward, removed after the experience.
        strategy.forward = lambda: avalanche_forward(ddp, strategy.mb_x, strategy.mb_task_id)

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        loader = strategy.dataloader
        if isinstance(loader, _SeededEpochs):
            loader = loader.loader
        stage = int(strategy.clock.train_exp_counter) + 1  # trained stages count from 1
        epoch = int(strategy.clock.train_exp_epochs)
        if hasattr(loader, "_get_loader"):
            strategy.dataloader = _SeededEpochs(loader, 1000 * stage_seed(self.seed, stage),
                                                 epoch)

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        ref = None if self.agem is None else self.agem.reference_gradients
        if ref is not None and ref.numel():  # computed in A-GEM's before_training_iteration
            dist.all_reduce(ref)
            ref /= world_size()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        strategy.__dict__.pop("forward", None)
        broadcast_module(strategy.model)


__all__ = [
    "DistributedError",
    "DistributedPlugin",
    "all_gather_cat",
    "all_reduce_sum",
    "broadcast_module",
    "broadcast_object",
    "check_in_sync",
    "gather_shards",
    "init_from_env",
    "is_distributed",
    "is_main",
    "local_main_first",
    "local_rank",
    "on_main",
    "per_rank_batch",
    "rank",
    "rank_seed",
    "shutdown",
    "state_digest",
    "to_cpu",
    "world_size",
]
