"""Plans + cached audio → a real Avalanche benchmark (``benchmark_from_datasets``).

Every experience carries ``attack`` (its attack id), ``utt_ids`` and ``rows``
(table row indices), in dataset order. Items are ``(x, y, t)`` with
``y = 1`` for bona fide (logit index 1) and task label ``t = 0`` (one task:
domain-incremental), which is what LwF/EWC/GEM need. Every utterance gets its level
set (``data.level``); training items are then cut at a random offset, evaluation
items from the start (Avalanche transform groups). Training batches are augmented
(``train.augment``) on the training device, whole, by
:class:`~cl_spoof.training.augment.AugmentPlugin`, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.classification_dataset import (
    _make_taskaware_classification_dataset,
)
from torch.utils.data import Dataset

from cl_spoof.benchmark.planning import ExperiencePlan
from cl_spoof.config import RunConfig
from cl_spoof.data.audio import fix_length, set_level
from cl_spoof.data.cache import CachedWaveforms
from cl_spoof.data.table import BONAFIDE
from cl_spoof.labels import BONAFIDE_CODE, BONAFIDE_TARGET, SAMPLE_RATE, SPOOF_TARGET


@dataclass(frozen=True)
class ClipSpec:
    """How a cached utterance becomes a model input (``data.*``)."""

    num_samples: int
    sample_rate: int = SAMPLE_RATE
    level: str = "none"
    level_db: float | None = None
    #: Training crops start at one of this many evenly spaced offsets; 0: at any offset.
    crop_offsets: int = 0

    @classmethod
    def from_config(cls, cfg: RunConfig) -> ClipSpec:
        """The inputs of a run: its length, rate and level handling, and with
        ``train.feature_cache`` the grid of training crops."""
        d, t = cfg.data, cfg.train
        return cls(d.num_samples, d.sample_rate, d.level, d.level_db,
                   t.feature_cache_crops if t.feature_cache else 0)


class ClipDataset(Dataset):
    """``(waveform, target)`` of some table rows: variable-length float32 cached audio,
    its level set (``level``, ``level_db``: see :func:`~cl_spoof.data.audio.set_level`)."""

    def __init__(self, waveforms: CachedWaveforms, rows: np.ndarray, targets: list[int],
                 level: str = "none", level_db: float | None = None) -> None:
        self.waveforms = waveforms
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = targets
        self.level, self.level_db = level, level_db

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        wave = set_level(self.waveforms.raw(int(self.rows[i])), self.level, self.level_db)
        return wave, self.targets[i]


class FixedCrop:
    """Eval transform: fixed length from the start (deterministic)."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(fix_length(wave, self.num_samples))


class RandomCrop(FixedCrop):
    """Train transform: fixed length at a random offset.

    One generator per clip, seeded from the torch RNG (seeded per stage and per
    DataLoader worker), draws the offset: a run is reproducible for its seed.
    ``offsets`` > 0 draws the offset from that many evenly spaced ones (the first at
    the clip's start, the last at its end), so the same crops come back epoch after
    epoch (``train.feature_cache``).
    """

    def __init__(self, num_samples: int, offsets: int = 0) -> None:
        super().__init__(num_samples)
        self.offsets = offsets

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        if self.offsets:
            return torch.from_numpy(grid_crop(wave, self.num_samples, self.offsets, rng))
        return torch.from_numpy(fix_length(wave, self.num_samples, rng))


def grid_crop(wave: np.ndarray, num_samples: int, offsets: int, rng: np.random.Generator
              ) -> np.ndarray:
    """``num_samples`` samples of ``wave`` starting at one of ``offsets`` evenly spaced
    offsets (drawn with ``rng``); a short clip is repeated as :func:`fix_length` does."""
    wave = fix_length(wave, max(num_samples, wave.shape[-1]))  # repeated when short
    starts = np.linspace(0, wave.shape[-1] - num_samples, offsets).round().astype(np.int64)
    start = int(starts[rng.integers(offsets)])
    return np.ascontiguousarray(wave[start:start + num_samples], dtype=np.float32)


def make_dataset(table: pd.DataFrame, waveforms: CachedWaveforms, rows: np.ndarray,
                 clip: ClipSpec | int, train: bool):
    """An Avalanche classification dataset over ``rows`` with train/eval crop groups
    (``clip``: a :class:`ClipSpec`, or just the number of samples)."""
    spec = clip if isinstance(clip, ClipSpec) else ClipSpec(clip)
    labels = table["label"].to_numpy()[rows]
    targets = [BONAFIDE_TARGET if lab == BONAFIDE else SPOOF_TARGET for lab in labels]
    dataset = _make_taskaware_classification_dataset(
        ClipDataset(waveforms, rows, targets, spec.level, spec.level_db),
        targets=targets,
        task_labels=0,
        transform_groups={"train": (RandomCrop(spec.num_samples, spec.crop_offsets), None),
                          "eval": (FixedCrop(spec.num_samples), None)},
        initial_transform_group="train" if train else "eval",
    )
    # Table row of every sample: survives Avalanche's subsets/concats (replay buffers),
    # so a buffer can be saved as row ids and rebuilt on resume. Its attack as an integer
    # (the attack's first appearance in the table; bona fide BONAFIDE_CODE), for
    # attack-balanced batches (train.balance).
    attacks = table["attack"] if "attack" in table else pd.Series("spoof", index=table.index)
    codes = np.where(table["label"].to_numpy() == BONAFIDE, BONAFIDE_CODE,
                     pd.factorize(attacks)[0])[rows]
    return dataset.update_data_attribute("rows", [int(r) for r in rows]) \
        .update_data_attribute("attack_codes", [int(c) for c in codes])


def _annotate(exp, table: pd.DataFrame, rows: np.ndarray, attack: str) -> None:
    exp.attack = attack
    exp.rows = rows
    exp.utt_ids = table["utt_id"].to_numpy()[rows].tolist()


def build_test_stream(table: pd.DataFrame, waveforms: CachedWaveforms,
                      plans: Sequence[ExperiencePlan], clip: ClipSpec | int) -> Sequence[Any]:
    """Test experiences only, one per plan (its ``test_rows``), annotated like
    :func:`build_benchmark`'s: for a set that is only ever evaluated."""
    test = [make_dataset(table, waveforms, p.test_rows, clip, False) for p in plans]
    stream = benchmark_from_datasets(test=test).test_stream
    for exp, p in zip(stream, plans, strict=True):
        _annotate(exp, table, p.test_rows, p.attack)
    return stream


def build_benchmark(table: pd.DataFrame, waveforms: CachedWaveforms,
                    plans: Sequence[ExperiencePlan], clip: ClipSpec | int,
                    train_plans: Sequence[ExperiencePlan] | None = None):
    """The Avalanche benchmark: one train and one test experience per plan.

    ``clip`` says how an utterance becomes an input (:meth:`ClipSpec.from_config`; a
    plain number of samples: no level handling).
    ``train_plans`` replaces the train stream (e.g. ``[joint_plan(plans)]`` for
    joint training) while the test stream stays one experience per attack.
    When the plans have calibration rows, a ``calibration_stream`` (one
    experience per plan, scored only) is added.
    """
    train_plans = list(plans) if train_plans is None else list(train_plans)
    train = [make_dataset(table, waveforms, p.train_rows, clip, True) for p in train_plans]
    test = [make_dataset(table, waveforms, p.test_rows, clip, False) for p in plans]
    streams = {"train": train, "test": test}
    calibrated = any(len(p.calibration_rows) for p in plans)
    if calibrated:
        streams["calibration"] = [make_dataset(table, waveforms, p.calibration_rows,
                                               clip, False) for p in plans]
    bm = benchmark_from_datasets(**streams)
    for exp, p in zip(bm.train_stream, train_plans, strict=True):
        _annotate(exp, table, p.train_rows, p.attack)
    for exp, p in zip(bm.test_stream, plans, strict=True):
        _annotate(exp, table, p.test_rows, p.attack)
    if calibrated:
        for exp, p in zip(bm.calibration_stream, plans, strict=True):
            _annotate(exp, table, p.calibration_rows, p.attack)
    return bm
