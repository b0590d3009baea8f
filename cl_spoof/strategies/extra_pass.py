"""The extra pass some methods run over an experience's training data after learning it.

RAWM and RWM collect the inputs of their layers, RegO the Fisher information, in one
pass over the experience just learnt; both read this rank's shard with evaluation
crops, in evaluation mode, and must leave the global RNG alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["ModesKept", "shard_loader"]


class ModesKept:
    """Evaluation mode inside the block; every module's own mode restored afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        for module, mode in self.modes:
            module.train(mode)


def shard_loader(dataset: Any, batch_size: int, ctx: RunContext | None) -> DataLoader:
    """This rank's share (``rank::world``) of ``dataset`` with evaluation crops, in order."""
    if hasattr(dataset, "eval"):
        dataset = dataset.eval()
    if ctx is not None and ctx.distributed:
        dataset = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    # Its own generator: the pass must not draw from the global RNG (the data order and
    # crops of the next experience stay those of any other strategy).
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                      generator=torch.Generator())
