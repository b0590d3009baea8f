"""Which table rows form each experience: the plan of a continual benchmark.

Planning is separate from audio so it can be checked on a protocol alone:

- train experience k = attack k's training spoofs + bona fide training
  utterances (all of them every time, or a disjoint share per experience);
- test experience k = attack k's test spoofs + all test bona fide;
- ``joint`` (the upper bound) trains once on every experience's rows;
- with ``data.experience_by: source`` (:func:`plan_sources`) experience k is
  source k: its own bona fide and spoof rows of the train / test split, capped
  per source (seeded, label ratio kept);
- calibration rows (``data.calibration_split``) are planned like test rows and
  only scored, to fit the score-to-LLR calibration of actDCF and Cllr.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cl_spoof.config import DataConfig
from cl_spoof.data.table import BONAFIDE, SPOOF
from cl_spoof.errors import DataError, did_you_mean
from cl_spoof.infra.names import BadNameError, check_name
from cl_spoof.labels import JOINT


@dataclass(frozen=True)
class ExperiencePlan:
    """Rows (indices into the table) of one train and one test experience."""

    attack: str  # the attack (or, with experience_by: source, the source name)
    train_rows: np.ndarray
    test_rows: np.ndarray
    calibration_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


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


def plan_evaluation_set(table: pd.DataFrame, seed: int = 0,
                        max_per_attack: int | None = None,
                        max_bonafide: int | None = None) -> list[ExperiencePlan]:
    """Test experiences only, over every row of ``table`` whatever its split: one per
    attack (sorted), its spoofs and all bona fide (capped, seeded, like test rows).
    For a set that is only ever evaluated (``data.pretrained_eval``)."""
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    attack = table["attack"].to_numpy()
    attacks = sorted(set(attack[~is_bona]))
    if not attacks or not is_bona.any():
        raise DataError(f"needs bona fide and spoof utterances to measure an EER; it has "
                        f"{int(is_bona.sum())} bona fide and {int((~is_bona).sum())} spoof")
    for a in attacks:
        try:
            check_name(a, "attack name")
        except BadNameError as exc:  # it becomes part of a column of eer_matrix.csv
            raise DataError(f"{exc} (attack names become columns; rename the attack in the "
                            "data)") from None
    bona = _subsample(np.flatnonzero(is_bona), max_bonafide, _stable_rng(seed, "bona-test"))
    empty = np.empty(0, dtype=np.int64)
    return [ExperiencePlan(a, empty, np.concatenate([
        _subsample(np.flatnonzero(~is_bona & (attack == a)), max_per_attack,
                   _stable_rng(seed, "test", a)), bona])) for a in attacks]


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
    calibration_split: str | None = None,
) -> list[ExperiencePlan]:
    """Which table rows form each experience; errors name the attack or split at fault.

    With ``calibration_split`` every plan also gets calibration rows: the
    attack's spoof rows of that split (capped like test rows) and its bona fide.
    """
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
                        f"(it has: {', '.join(sorted(known)) or 'no spoof rows'})"
                        + did_you_mean(unknown[0], known))
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
    bona_cal = np.empty(0, dtype=np.int64)
    if calibration_split is not None:
        bona_cal = _subsample(np.flatnonzero(is_bona & (split == calibration_split)),
                              max_bonafide_test, _stable_rng(seed, "bona-calibration"))
        cal_spoof = ~is_bona & (split == calibration_split) & np.isin(attack, list(attacks))
        if len(bona_cal) == 0 or not cal_spoof.any():
            raise DataError(f"data.calibration_split {calibration_split!r}: needs bona fide and "
                            "spoof utterances of the learned attacks to fit the calibration on; "
                            f"it has {len(bona_cal)} bona fide and {int(cal_spoof.sum())} spoof")
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
        cal = np.empty(0, dtype=np.int64)
        if calibration_split is not None:
            own = ~is_bona & (attack == a) & (split == calibration_split)
            cal = _subsample(np.flatnonzero(own), max_test_per_attack,
                             _stable_rng(seed, "calibration", a))
            cal = np.concatenate([cal, bona_cal])
        plans.append(ExperiencePlan(a, np.concatenate([tr, bona]), np.concatenate([te, bona_test]),
                                    cal))
    return plans


def _stratified(rows: np.ndarray, is_bona: np.ndarray, cap: int | None,
                rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` of ``rows``, sampled per label so the bona fide share is kept
    (at least one of each label present), sorted."""
    if cap is None or len(rows) <= cap:
        return rows
    bona, spoof = rows[is_bona[rows]], rows[~is_bona[rows]]
    n_bona = int(round(cap * len(bona) / len(rows)))
    n_bona = min(len(bona), max(n_bona, 1 if len(bona) else 0, cap - len(spoof)))
    n_bona = min(n_bona, cap - (1 if len(spoof) else 0))
    picked = [rng.choice(bona, size=n_bona, replace=False),
              rng.choice(spoof, size=cap - n_bona, replace=False)]
    return np.sort(np.concatenate(picked))


@dataclass(frozen=True)
class SourcePlanSpec:
    """What :func:`plan_sources` needs of one source: its name and caps."""

    name: str
    max_train: int | None = None
    max_test: int | None = None


def cap_sources(table: pd.DataFrame, sources: Sequence[SourcePlanSpec], splits: Sequence[str],
                seed: int = 0) -> pd.DataFrame:
    """The table with each source's rows of ``splits[0]`` capped by ``max_train`` and of
    the other splits by ``max_test`` (seeded, label ratio kept); for attack-by-attack
    runs over several sources."""
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    split = table["split"].to_numpy()
    source = table["source"].to_numpy()
    keep = np.ones(len(table), dtype=bool)
    for spec in sources:
        for i, name in enumerate(splits):
            cap = spec.max_train if i == 0 else spec.max_test
            rows = np.flatnonzero((source == spec.name) & (split == name))
            if cap is None or len(rows) <= cap:
                continue
            kept = _stratified(rows, is_bona, cap, _stable_rng(seed, "cap", spec.name, name))
            keep[np.setdiff1d(rows, kept)] = False
    return table.loc[keep].reset_index(drop=True)


def plan_sources(table: pd.DataFrame, sources: Sequence[SourcePlanSpec],
                 train_split: str = "train", test_split: str = "dev", seed: int = 0,
                 calibration_split: str | None = None) -> list[ExperiencePlan]:
    """One experience per source (column ``source``): its own rows of each split, capped.

    Every experience needs bona fide and spoof rows in its train and test split
    (and calibration split when given); errors name the source and split.
    """
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    split = table["split"].to_numpy()
    source = table["source"].to_numpy()
    plans = []
    for spec in sources:
        own = source == spec.name
        parts: dict[str, np.ndarray] = {}
        roles = [("train", train_split, spec.max_train), ("test", test_split, spec.max_test)]
        if calibration_split is not None:
            roles.append(("calibration", calibration_split, spec.max_test))
        for role, name, cap in roles:
            rows = np.flatnonzero(own & (split == name))
            n_bona = int(is_bona[rows].sum())
            if n_bona == 0 or n_bona == len(rows):
                raise DataError(f"source {spec.name}: its {role} split ({name!r} after the "
                                f"split mapping) has {n_bona} bona fide and "
                                f"{len(rows) - n_bona} spoof utterances; an experience needs "
                                "both (check the source's splits or reader options)")
            parts[role] = _stratified(rows, is_bona, cap, _stable_rng(seed, role, spec.name))
        plans.append(ExperiencePlan(spec.name, parts["train"], parts["test"],
                                    parts.get("calibration", np.empty(0, dtype=np.int64))))
    return plans


def joint_plan(plans: Sequence[ExperiencePlan]) -> ExperiencePlan:
    """One training experience holding every experience's training rows (the upper bound)."""
    rows = np.unique(np.concatenate([p.train_rows for p in plans]))
    return ExperiencePlan(JOINT, rows, np.empty(0, dtype=np.int64))


def configured_attacks(table: pd.DataFrame, cfg: DataConfig) -> tuple[str, ...]:
    """The experience order: ``cfg.attacks``, else every training attack then eval-only ones
    (several sources: source by source in list order, each one's attacks sorted; with
    ``experience_by: source``: the source names in their order)."""
    if cfg.experience_by == "source":
        return tuple(s.name for s in cfg.sources)
    if cfg.attacks:
        return cfg.attacks
    if len(cfg.sources) > 1:  # source by source (list order), each one's attacks sorted
        return tuple(a for s in cfg.sources
                     for a in default_attacks(table[table["source"] == s.name], cfg.train_split))
    trained = default_attacks(table, cfg.train_split)
    return trained + tuple(a for a in cfg.eval_only_attacks if a not in trained)
