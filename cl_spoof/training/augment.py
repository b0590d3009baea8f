"""``AugmentPlugin``: training batches augmented whole on the training device
(``train.augment``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor

from cl_spoof.config import AugmentConfig
from cl_spoof.data.augment import augment_batch

__all__ = ["AugmentPlugin", "AugmentedAhead", "batch_generator"]


def batch_generator(seed: int, stage: int, epoch: int, iteration: int,
                    device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of one training batch, on ``device``: its state is a function of
    ``(seed, stage, epoch, iteration)`` alone (hashed by NumPy's ``SeedSequence``), so
    a resumed run draws what an uninterrupted one drew, whatever ran before."""
    words = [int(v) for v in (seed, stage, epoch, iteration)]
    if min(words) < 0:
        raise ValueError(f"seed, stage, epoch and iteration must be >= 0, got {words}")
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(int(state[0]))
    return generator


class AugmentedAhead:
    """A training loader whose batches come augmented, each augmented in a background
    thread while the batch before it trains (one batch ahead)."""

    def __init__(self, loader: Any, augment: Callable[[Tensor, int], Tensor]) -> None:
        self.loader, self.augment = loader, augment

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # what else the strategy asks of its loader
        return getattr(self.loader, name)

    def _augmented(self, batch: Any, iteration: int) -> list[Any]:
        batch = list(batch)
        batch[0] = self.augment(batch[0], iteration)
        return batch

    def __iter__(self) -> Iterator[list[Any]]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
            pending: Future[list[Any]] | None = None
            for iteration, batch in enumerate(self.loader):
                ahead = pool.submit(self._augmented, batch, iteration)
                if pending is not None:
                    yield pending.result()
                pending = ahead
            if pending is not None:
                yield pending.result()


class AugmentPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Augments every training mini-batch, whole, on the training device.

    The inputs of each training mini-batch (a ``(B, N)`` batch of clips at
    ``sample_rate`` Hz) are replaced by :func:`~cl_spoof.data.augment.augment_batch`
    of them (RawBoost, band limitation, gain: ``cfg``), each clip with its own random
    parameters. The random draws come from :func:`batch_generator` of (``seed``,
    experience, epoch, iteration) of the strategy's clock, so a run is reproducible for
    its seed and a run resumed at an experience boundary augments exactly as the
    uninterrupted run did. Under data-parallel training give each process its own
    ``seed``: each augments its own share. Only training iterations are touched:
    evaluation, and the passes other plugins make over a dataset with their own loaders,
    see the clips as loaded.

    Where: on a GPU, at the start of each iteration, once the batch is there. On a CPU
    with a core that training leaves free (``overlap``; default: training on the CPU
    with fewer torch threads than cores), each batch is augmented in a background
    thread while the batch before it trains, so the augmentation costs that core's time
    rather than the training loop's. Both ways draw the same numbers: the clips are
    augmented identically.
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int, seed: int = 0,
                 overlap: bool | None = None) -> None:
        super().__init__()
        self.cfg, self.sample_rate, self.seed = cfg, sample_rate, seed
        self.overlap = overlap
        self._inner: Any = None  # the strategy's own loader while the prefetching one runs

    def _augment(self, x: Tensor, stage: int, epoch: int, iteration: int) -> Tensor:
        generator = batch_generator(self.seed, stage, epoch, iteration, x.device)
        with torch.no_grad():
            return augment_batch(x, self.sample_rate, self.cfg, generator)

    def _overlaps(self, strategy: Any) -> bool:
        if self.overlap is not None:
            return self.overlap
        return torch.device(strategy.device).type == "cpu" and \
            torch.get_num_threads() < (os.cpu_count() or 1)

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if not self._overlaps(strategy):
            return
        stage, epoch = int(strategy.clock.train_exp_counter), int(strategy.clock.train_exp_epochs)
        self._inner = strategy.dataloader
        strategy.dataloader = AugmentedAhead(
            self._inner, lambda x, iteration: self._augment(x, stage, epoch, iteration))

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if self._inner is not None:
            strategy.dataloader, self._inner = self._inner, None

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.after_training_epoch(strategy)  # an epoch stopped early leaves no wrapper

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        if self._inner is not None:  # augmented in the background already
            return
        clock = strategy.clock
        strategy.mbatch[0] = self._augment(strategy.mbatch[0], clock.train_exp_counter,
                                           clock.train_exp_epochs,
                                           clock.train_epoch_iterations)
