"""``RunContext``: this process's device and its place among the processes of a run.

One context is made per command (by the CLI, or by each job of ``compare --jobs``)
and passed to the workflows. Strategies and metrics receive what they need from it
— a batch share, a gather function, extra plugins — and never import
``torch.distributed``: that stays in :mod:`cl_spoof.infra.distributed`. On one
process (``RunContext.local``) every collective is a no-op, so the same workflow
code runs with and without ``torchrun``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn

from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.runtime import process_device

T = TypeVar("T")


@dataclass(frozen=True)
class RunContext:
    """Who this process is in a run; the collectives it may call."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    # ------------------------------------------------------------------ making one

    @classmethod
    def local(cls, device: str | torch.device = "cpu") -> RunContext:
        """A single-process context on ``device`` (``auto``, ``cpu``, ``cuda:1``, ...)."""
        dev = device if isinstance(device, torch.device) else process_device(device)
        return cls(device=dev)

    @classmethod
    @contextlib.contextmanager
    def join(cls, device: str, timeout_s: float) -> Iterator[RunContext]:
        """Join torchrun's process group for one command (a local context otherwise).

        A collective that waits longer than ``timeout_s`` (a rank that hangs) becomes
        a :class:`CLSpoofError` saying so; the group is left on exit.
        """
        from cl_spoof.infra import distributed as dist

        joined = dist.init_from_env(device, timeout_s)
        ctx = cls(device=process_device(device), rank=dist.rank(),
                  world_size=dist.world_size(), local_rank=dist.local_rank())
        try:
            yield ctx
        except RuntimeError as exc:  # Gloo: "Timed out waiting ...", "Application timeout"
            text = str(exc).lower()
            if not (joined and ("timed out" in text or "timeout" in text)):
                raise
            raise CLSpoofError(
                f"no answer from the other processes within train.dist_timeout = "
                f"{timeout_s:g} s: one of them hangs or has died (see its output); "
                f"{str(exc).strip().splitlines()[-1]}") from exc
        finally:
            dist.shutdown()

    # ------------------------------------------------------------------ facts

    @property
    def distributed(self) -> bool:
        """Whether this run spans more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and reports progress."""
        return self.rank == 0

    def batch_share(self, batch_size: int) -> int:
        """This process's share of a global mini-batch (``train.batch_size``)."""
        if not self.distributed:
            return batch_size
        from cl_spoof.infra import distributed as dist

        return dist.per_rank_batch(batch_size)

    def rank_seed(self, seed: int) -> int:
        """``seed`` on rank 0 (so rank 0 reproduces a one-process run), shifted on others."""
        if not self.distributed:
            return seed
        from cl_spoof.infra import distributed as dist

        return dist.rank_seed(seed)

    # ------------------------------------------------------------------ collectives

    def broadcast_object(self, obj: T) -> T:
        """``obj`` of rank 0, on every rank."""
        if not self.distributed:
            return obj
        from cl_spoof.infra import distributed as dist

        return cast(T, dist.broadcast_object(dist.to_cpu(obj) if self.is_main else None))

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only; every rank gets its result (or its CLSpoofError)."""
        if not self.distributed:
            return fn()
        from cl_spoof.infra import distributed as dist

        return dist.on_main(fn)

    def local_main_first(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on each machine's first process, then on the others (cache building)."""
        if not self.distributed:
            return fn()
        from cl_spoof.infra import distributed as dist

        return dist.local_main_first(fn)

    def gather_shards(self, values: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` per-sample values of a dataset each rank scored a shard of, in order."""
        if not self.distributed:
            return values
        from cl_spoof.infra import distributed as dist

        return dist.gather_shards(values, n)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over every rank, in place (the same result on all ranks)."""
        if not self.distributed:
            return tensor
        from cl_spoof.infra import distributed as dist

        return dist.all_reduce_sum(tensor)

    def all_gather_cat(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` (same shape on all ranks) joined along dim 0, rank order."""
        if not self.distributed:
            return tensor
        from cl_spoof.infra import distributed as dist

        return dist.all_gather_cat(tensor)

    def sync_module_and_state(self, module: nn.Module, what: str,
                              export: Callable[[], Any], restore: Callable[[Any], None]
                              ) -> None:
        """Give every rank rank 0's strategy state, then check that all ranks agree.

        ``module`` itself was already made rank 0's by the training plugin at the end of
        the experience (before other plugins copy it). ``export()`` returns the state
        (nested dicts/lists of tensors and plain values); ``restore(state)`` puts rank
        0's state back on another rank. The check digests ``module`` and a fresh
        ``export()`` on every rank, so it also covers what ``restore`` rebuilt; a
        mismatch raises naming ``what``.
        """
        if not self.distributed:
            return
        from cl_spoof.infra import distributed as dist

        state = dist.broadcast_object(dist.to_cpu(export()) if self.is_main else None)
        if not self.is_main:
            restore(state)
        dist.check_in_sync(module, what, dist.to_cpu(export()))

    def training_plugins(self, seed: int) -> list[Any]:
        """Avalanche plugins a strategy needs in this context (first in its plugin list).

        One process: none. Under torchrun: the plugin that trains through one DDP
        wrapper and seeds the samplers that shard every epoch.
        """
        if not self.distributed:
            return []
        from cl_spoof.infra import distributed as dist

        return [dist.DistributedPlugin(self.device, seed)]


__all__ = ["RunContext"]
