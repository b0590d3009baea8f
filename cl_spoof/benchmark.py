"""Per-attack continual benchmarks as real Avalanche benchmarks.

The utterance table and an ordered list of attacks become an Avalanche
``CLScenario`` (``benchmark_from_datasets``):

- train stream: experience k = attack k's training spoofs + bona fide training
  utterances (all of them every time, or a disjoint share per experience);
- test stream: experience k = attack k's test spoofs + all test bona fide.

Every experience carries ``attack`` (its attack id), ``utt_ids`` and ``rows``
(table row indices), in dataset order. Items are ``(x, y, t)`` with
``y = 1`` for bona fide (logit index 1) and task label ``t = 0`` (one task:
domain-incremental), which is what LwF/EWC/GEM need.

Planning (which rows go where) is separate from audio so it can be checked on a
protocol alone; :func:`load_benchmark_data` then decodes only the rows used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.classification_dataset import (
    _make_taskaware_classification_dataset,
)
from torch.utils.data import Dataset

from cl_spoof.config import DataConfig
from cl_spoof.data import read_source
from cl_spoof.data.audio import fix_length
from cl_spoof.data.cache import CachedWaveforms, WaveformCache
from cl_spoof.data.checks import check_table
from cl_spoof.data.table import BONAFIDE, NO_ATTACK, SPOOF
from cl_spoof.errors import DataError

BONAFIDE_TARGET = 1
SPOOF_TARGET = 0
JOINT = "joint"


@dataclass(frozen=True)
class ExperiencePlan:
    """Rows (indices into the table) of one train and one test experience."""

    attack: str
    train_rows: np.ndarray
    test_rows: np.ndarray


def _stable_rng(seed: int, *names: str) -> np.random.Generator:
    """An RNG that depends only on the seed and the given names (order-independent of use)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _subsample(rows: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or len(rows) <= cap:
        return rows
    return np.sort(rng.choice(rows, size=cap, replace=False))


def split_eval_only_attacks(table: pd.DataFrame, attacks: Sequence[str], test_fraction: float,
                            seed: int, train_split: str = "train", test_split: str = "dev"
                            ) -> pd.DataFrame:
    """Move eval-partition rows of ``attacks`` (and the eval bona fide) into train/test.

    ASVspoof 2019 LA's A07-A19 exist only in the eval partition. To learn them as
    further experiences, the eval partition's speakers are split (seeded) into a
    train part and a test part (``test_fraction`` of the speakers); those rows'
    ``split`` becomes ``train_split`` or ``test_split``. Speakers never straddle
    the two parts. Other eval rows (other attacks) are left as they are.
    """
    if not attacks:
        return table
    ev = table["split"] == "eval"
    selected = ev & (table["attack"].isin(list(attacks)) | (table["label"] == BONAFIDE))
    missing = [a for a in attacks if not ((table["attack"] == a) & ev).any()]
    if missing:
        raise DataError(f"eval_only_attacks {missing} have no rows in the eval partition")
    speakers = np.array(sorted(table.loc[selected, "speaker"].unique()))
    rng = _stable_rng(seed, "eval-only-speakers")
    rng.shuffle(speakers)
    n_test = max(1, int(round(test_fraction * len(speakers))))
    if n_test >= len(speakers):
        raise DataError("eval_only attacks need at least two eval speakers to split")
    test_speakers = set(speakers[:n_test])
    out = table.copy()
    is_test = out["speaker"].isin(test_speakers)
    out.loc[selected & is_test, "split"] = test_split
    out.loc[selected & ~is_test, "split"] = train_split
    return out


def default_attacks(table: pd.DataFrame, train_split: str) -> tuple[str, ...]:
    """Every spoof attack with training rows, sorted."""
    spoof = table[(table["label"] == SPOOF) & (table["split"] == train_split)]
    return tuple(sorted(spoof["attack"].unique()))


def plan_experiences(
    table: pd.DataFrame,
    attacks: Sequence[str],
    train_split: str = "train",
    test_split: str = "dev",
    bonafide_sharing: str = "all",
    seed: int = 0,
    max_train_per_attack: int | None = None,
    max_test_per_attack: int | None = None,
    max_bonafide_test: int | None = None,
) -> list[ExperiencePlan]:
    """Which table rows form each experience; errors name the attack or split at fault."""
    if not attacks:
        raise DataError("no attacks to learn: the table has no spoof rows in the train split "
                        f"{train_split!r} and the config names none")
    dup = sorted({a for a in attacks if list(attacks).count(a) > 1})
    if dup:
        raise DataError(f"attacks listed twice in the experience order: {', '.join(dup)}")
    known = set(table.loc[table["label"] == SPOOF, "attack"])
    unknown = [a for a in attacks if a not in known]
    if unknown:
        raise DataError(f"attack(s) {', '.join(unknown)} not in the data "
                        f"(it has: {', '.join(sorted(known)) or 'no spoof rows'})")
    for split in (train_split, test_split):
        if not (table["split"] == split).any():
            raise DataError(f"split {split!r} is empty")
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    split = table["split"].to_numpy()
    attack = table["attack"].to_numpy()
    bona_train = np.flatnonzero(is_bona & (split == train_split))
    bona_test = np.flatnonzero(is_bona & (split == test_split))
    if len(bona_train) == 0:
        raise DataError(f"no bona fide utterances in the train split {train_split!r}")
    if len(bona_test) == 0:
        raise DataError(f"no bona fide utterances in the test split {test_split!r}")
    bona_test = _subsample(bona_test, max_bonafide_test, _stable_rng(seed, "bona-test"))
    if bonafide_sharing == "all":
        shares = [bona_train] * len(attacks)
    elif bonafide_sharing == "disjoint":
        shuffled = bona_train.copy()
        _stable_rng(seed, "bona-shares").shuffle(shuffled)
        shares = [np.sort(s) for s in np.array_split(shuffled, len(attacks))]
        if min(len(s) for s in shares) == 0:
            raise DataError(f"{len(bona_train)} bona fide training utterances cannot be shared "
                            f"disjointly among {len(attacks)} experiences")
    else:
        raise DataError(f"bonafide_sharing must be 'all' or 'disjoint', got {bonafide_sharing!r}")
    plans = []
    for a, bona in zip(attacks, shares, strict=True):
        tr = np.flatnonzero(~is_bona & (attack == a) & (split == train_split))
        te = np.flatnonzero(~is_bona & (attack == a) & (split == test_split))
        if len(tr) == 0:
            raise DataError(f"attack {a}: no spoof utterances in the train split {train_split!r}")
        if len(te) == 0:
            raise DataError(f"attack {a}: no spoof utterances in the test split {test_split!r}")
        tr = _subsample(tr, max_train_per_attack, _stable_rng(seed, "train", a))
        te = _subsample(te, max_test_per_attack, _stable_rng(seed, "test", a))
        plans.append(ExperiencePlan(a, np.concatenate([tr, bona]), np.concatenate([te, bona_test])))
    return plans


def joint_plan(plans: Sequence[ExperiencePlan]) -> ExperiencePlan:
    """One training experience holding every experience's training rows (the upper bound)."""
    rows = np.unique(np.concatenate([p.train_rows for p in plans]))
    return ExperiencePlan(JOINT, rows, np.empty(0, dtype=np.int64))


# ------------------------------------------------------------------------ datasets


class ClipDataset(Dataset):
    """``(waveform, target)`` of some table rows: variable-length float32 cached audio."""

    def __init__(self, waveforms: CachedWaveforms, rows: np.ndarray, targets: list[int]) -> None:
        self.waveforms = waveforms
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = targets

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.waveforms.raw(int(self.rows[i])), self.targets[i]


class FixedCrop:
    """Eval transform: fixed length from the start (deterministic)."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(fix_length(wave, self.num_samples))


class RandomCrop(FixedCrop):
    """Train transform: fixed length at a random offset (torch RNG: seeded per worker)."""

    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        return torch.from_numpy(fix_length(wave, self.num_samples, np.random.default_rng(seed)))


def make_dataset(table: pd.DataFrame, waveforms: CachedWaveforms, rows: np.ndarray,
                 num_samples: int, train: bool):
    """An Avalanche classification dataset over ``rows`` with train/eval crop groups."""
    labels = table["label"].to_numpy()[rows]
    targets = [BONAFIDE_TARGET if lab == BONAFIDE else SPOOF_TARGET for lab in labels]
    dataset = _make_taskaware_classification_dataset(
        ClipDataset(waveforms, rows, targets),
        targets=targets,
        task_labels=0,
        transform_groups={"train": (RandomCrop(num_samples), None),
                          "eval": (FixedCrop(num_samples), None)},
        initial_transform_group="train" if train else "eval",
    )
    # Table row of every sample: survives Avalanche's subsets/concats (replay buffers),
    # so a buffer can be saved as row ids and rebuilt on resume.
    return dataset.update_data_attribute("rows", [int(r) for r in rows])


def _annotate(exp, table: pd.DataFrame, rows: np.ndarray, attack: str) -> None:
    exp.attack = attack
    exp.rows = rows
    exp.utt_ids = table["utt_id"].to_numpy()[rows].tolist()


def build_benchmark(table: pd.DataFrame, waveforms: CachedWaveforms,
                    plans: Sequence[ExperiencePlan], num_samples: int,
                    train_plans: Sequence[ExperiencePlan] | None = None):
    """The Avalanche benchmark: one train and one test experience per plan.

    ``train_plans`` replaces the train stream (e.g. ``[joint_plan(plans)]`` for
    joint training) while the test stream stays one experience per attack.
    """
    train_plans = list(plans) if train_plans is None else list(train_plans)
    train = [make_dataset(table, waveforms, p.train_rows, num_samples, True) for p in train_plans]
    test = [make_dataset(table, waveforms, p.test_rows, num_samples, False) for p in plans]
    bm = benchmark_from_datasets(train=train, test=test)
    for exp, p in zip(bm.train_stream, train_plans, strict=True):
        _annotate(exp, table, p.train_rows, p.attack)
    for exp, p in zip(bm.test_stream, plans, strict=True):
        _annotate(exp, table, p.test_rows, p.attack)
    return bm


def class_weights(targets: Sequence[int]) -> torch.Tensor:
    """Inverse-frequency weights ``n / (2 n_c)`` for (spoof, bona fide classes).

    A class absent from ``targets`` gets weight 1 (it contributes no loss anyway),
    so an experience without bona fide trains instead of crashing.
    """
    t = np.asarray(targets)
    if t.size == 0:
        raise DataError("a training experience has no samples")
    counts = np.array([(t == SPOOF_TARGET).sum(), (t == BONAFIDE_TARGET).sum()], dtype=np.float64)
    weights = np.where(counts > 0, len(t) / (2.0 * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


# --------------------------------------------------------------------- loading


@dataclass
class BenchmarkData:
    """The checked table, the cached audio of the rows used, and the plans."""

    table: pd.DataFrame
    waveforms: CachedWaveforms
    plans: list[ExperiencePlan]
    source: str


def resolve_source(cfg: DataConfig,
                   progress: Callable[[str, int, int], None] | None = None) -> Path:
    """The data source path; builds the demo corpus when ``source`` is ``demo``."""
    if cfg.source == "demo":
        from cl_spoof.demo.corpus import ensure_demo_corpus

        report = None if progress is None else (
            lambda i, n: progress("building the demo corpus (first use only)", i, n))
        return ensure_demo_corpus(seed=cfg.demo_seed, progress=report)
    return Path(cfg.source).expanduser()


def read_run_table(cfg: DataConfig,
                   progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, Path]:
    """The checked utterance table of ``cfg.data`` and its source path.

    Metadata problems anywhere in the table and missing files (unless
    ``allow_missing``) raise one :class:`DataError` listing every problem.
    """
    source = resolve_source(cfg, progress)
    table = read_source(source)
    table = split_eval_only_attacks(table, cfg.eval_only_attacks, cfg.eval_only_test_fraction,
                                    seed=0, train_split=cfg.train_split,
                                    test_split=cfg.test_split)
    report = check_table(table, allow_missing=cfg.allow_missing, check_audio=False)
    report.raise_if_problems(source)
    return report.table, source


def configured_attacks(table: pd.DataFrame, cfg: DataConfig) -> tuple[str, ...]:
    """The experience order: ``cfg.attacks``, else every training attack then eval-only ones."""
    if cfg.attacks:
        return cfg.attacks
    trained = default_attacks(table, cfg.train_split)
    return trained + tuple(a for a in cfg.eval_only_attacks if a not in trained)


def load_benchmark_data(
    cfg: DataConfig,
    seed: int = 0,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchmarkData:
    """Read, check, plan and cache the data of a run; refuses to start on bad data.

    Metadata problems anywhere in the table, missing files (unless
    ``allow_missing``) and undecodable audio among the rows used all raise one
    :class:`DataError` listing every problem with its file.
    """
    if on_stage is not None:
        on_stage("preparing data source")
    table, source = read_run_table(cfg, progress)
    return prepare_benchmark_data(table, configured_attacks(table, cfg), cfg, seed, str(source),
                                  on_stage, progress)


def prepare_benchmark_data(
    table: pd.DataFrame,
    attacks: Sequence[str],
    cfg: DataConfig,
    seed: int,
    source: str,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchmarkData:
    """Plan the experiences of ``attacks`` and cache the audio of the rows they use."""
    plans = plan_experiences(table, attacks, cfg.train_split, cfg.test_split,
                             cfg.bonafide_sharing, seed, cfg.max_train_per_attack,
                             cfg.max_test_per_attack, cfg.max_bonafide_test)
    used = np.unique(np.concatenate([np.concatenate([p.train_rows, p.test_rows]) for p in plans]))
    sub = table.iloc[used].reset_index(drop=True)
    remap = np.full(len(table), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    plans = [ExperiencePlan(p.attack, remap[p.train_rows], remap[p.test_rows]) for p in plans]
    if on_stage is not None:
        on_stage("decoding audio into the cache")
    cache = WaveformCache(cfg.cache_dir, max_samples=cache_samples(cfg.num_samples))
    waveforms, problems = cache.load(
        sub["path"].tolist(),
        progress=None if progress is None else (lambda i, n: progress("decode audio", i, n)))
    if problems:
        from cl_spoof.data.checks import CheckReport

        CheckReport(sub, problems).raise_if_problems(source)
    return BenchmarkData(table=sub, waveforms=waveforms, plans=plans, source=source)


def cache_samples(num_samples: int) -> int:
    """Samples cached per clip: the input length plus room for random training crops."""
    return int(num_samples * 1.5)


__all__ = ["BONAFIDE_TARGET", "JOINT", "NO_ATTACK", "SPOOF_TARGET", "BenchmarkData",
           "ExperiencePlan", "build_benchmark", "class_weights", "default_attacks",
           "joint_plan", "load_benchmark_data", "plan_experiences", "split_eval_only_attacks"]
