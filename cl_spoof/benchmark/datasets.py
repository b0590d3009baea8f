"""Plans + cached audio → a real Avalanche benchmark (``benchmark_from_datasets``).

Every experience carries ``attack`` (its attack id), ``utt_ids`` and ``rows``
(table row indices), in dataset order. Items are ``(x, y, t)`` with
``y = 1`` for bona fide (logit index 1) and task label ``t = 0`` (one task:
domain-incremental), which is what LwF/EWC/GEM need. Every utterance gets its level
set (``data.level``); training items are then cut at a random offset and augmented
(``train.augment``), evaluation items cut from the start (Avalanche transform
groups, so DataLoader workers run the augmentation).
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
from cl_spoof.config import AugmentConfig, RunConfig
from cl_spoof.data.audio import fix_length, set_level
from cl_spoof.data.augment import augment
from cl_spoof.data.cache import CachedWaveforms
from cl_spoof.data.table import BONAFIDE
from cl_spoof.labels import BONAFIDE_TARGET, SAMPLE_RATE, SPOOF_TARGET


@dataclass(frozen=True)
class ClipSpec:
    """How a cached utterance becomes a model input (``data.*`` and ``train.augment``)."""

    num_samples: int
    sample_rate: int = SAMPLE_RATE
    level: str = "none"
    level_db: float | None = None
    augment: AugmentConfig | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig) -> ClipSpec:
        """The inputs of a run: its length, rate, level handling and augmentation."""
        d = cfg.data
        return cls(d.num_samples, d.sample_rate, d.level, d.level_db, cfg.train.augment)


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
    """Train transform: fixed length at a random offset, then ``augment`` when given.

    One generator per clip, seeded from the torch RNG (seeded per stage and per
    DataLoader worker), draws the crop and the augmentation: a run is reproducible
    for its seed, and a clip's augmentation does not depend on the rest of its batch.
    """

    def __init__(self, num_samples: int, augment: AugmentConfig | None = None,
                 sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(num_samples)
        self.augment, self.sample_rate = augment, sample_rate

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        clip = fix_length(wave, self.num_samples, rng)
        if self.augment is not None:
            clip = augment(clip, self.sample_rate, self.augment, rng)
        return torch.from_numpy(clip)


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
        transform_groups={"train": (RandomCrop(spec.num_samples, spec.augment,
                                               spec.sample_rate), None),
                          "eval": (FixedCrop(spec.num_samples), None)},
        initial_transform_group="train" if train else "eval",
    )
    # Table row of every sample: survives Avalanche's subsets/concats (replay buffers),
    # so a buffer can be saved as row ids and rebuilt on resume.
    return dataset.update_data_attribute("rows", [int(r) for r in rows])


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
    plain number of samples: no level handling, no augmentation).
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
