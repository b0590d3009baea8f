"""Which table rows form each experience: the plan of a continual benchmark.

Planning is separate from audio so it can be checked on a protocol alone:

- train experience k = attack k's training spoofs + bona fide training
  utterances (all of them every time, or a disjoint share per experience);
- test experience k = attack k's test spoofs + all test bona fide;
- ``joint`` (the upper bound) trains once on every experience's rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cl_spoof.config import DataConfig
from cl_spoof.data.table import BONAFIDE, SPOOF
from cl_spoof.errors import DataError
from cl_spoof.infra.names import BadNameError, check_name
from cl_spoof.labels import JOINT


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
    for a in attacks:
        try:
            check_name(a, "attack name")
        except BadNameError as exc:  # it becomes a column of eer_matrix.csv
            raise DataError(f"{exc} (attack names become columns and file names; rename the "
                            "attack in the data)") from None
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


def configured_attacks(table: pd.DataFrame, cfg: DataConfig) -> tuple[str, ...]:
    """The experience order: ``cfg.attacks``, else every training attack then eval-only ones."""
    if cfg.attacks:
        return cfg.attacks
    trained = default_attacks(table, cfg.train_split)
    return trained + tuple(a for a in cfg.eval_only_attacks if a not in trained)
