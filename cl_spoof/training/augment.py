"""``AugmentPlugin``: training batches augmented whole on the training device
(``train.augment``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin

from cl_spoof.config import AugmentConfig
from cl_spoof.data.augment import augment_batch

__all__ = ["AugmentPlugin", "batch_generator"]


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


class AugmentPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Augments every training mini-batch once it is on the training device.

    Before each training iteration, the inputs ``strategy.mbatch[0]`` (a ``(B, N)``
    batch of clips at ``sample_rate`` Hz) are replaced by
    :func:`~cl_spoof.data.augment.augment_batch` of them (RawBoost, band limitation,
    gain: ``cfg``), each clip with its own random parameters. The random draws come
    from :func:`batch_generator` of (``seed``, experience, epoch, iteration) of the
    strategy's clock, so a run is reproducible for its seed and a run resumed at an
    experience boundary augments exactly as the uninterrupted run did. Under
    data-parallel training give each process its own ``seed``: each augments its own
    share. Only training iterations are touched: evaluation, and the passes other
    plugins make over a dataset with their own loaders, see the clips as loaded.
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.sample_rate, self.seed = cfg, sample_rate, seed

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        clock = strategy.clock
        x = strategy.mbatch[0]
        generator = batch_generator(self.seed, clock.train_exp_counter,
                                    clock.train_exp_epochs, clock.train_epoch_iterations,
                                    x.device)
        with torch.no_grad():
            strategy.mbatch[0] = augment_batch(x, self.sample_rate, self.cfg, generator)
