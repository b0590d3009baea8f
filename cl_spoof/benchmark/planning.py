"""Which table rows form each experience: the plan of a continual benchmark.

Planning is separate from audio so it can be checked on a protocol alone:

- train experience k = attack k's training spoofs + bona fide training
  utterances (all of them every time, or a disjoint share per experience);
- test experience k = attack k's test spoofs + all test bona fide;
- ``joint`` (the upper bound) trains once on every experience's rows;
- with ``data.experience_by: source`` (:func:`plan_sources`) experience k is
  source k: its own bona fide and spoof rows of the train / test split, capped
  per source (seeded, label ratio kept);
- with ``data.experience_by: family`` (:func:`plan_families`) train experience k
  is family k (the training spoofs of all its attacks + bona fide) while the test
  experiences stay one per attack;
- ``data.resplit_by_speaker`` (:func:`resplit_by_speaker`) re-draws a
  speaker-disjoint train / test split over every source before planning;
- calibration rows (``data.calibration_split``) are planned like test rows and
  only scored, to fit the score-to-LLR calibration of actDCF and Cllr.
"""

from __future__ import annotations

import fnmatch
import hashlib
import zlib
from collections.abc import Mapping, Sequence
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


def speaker_draw(speaker: str, seed: int) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``speaker``: the first 64 bits
    of SHA-256 of ``"<seed>:<speaker>"`` over 2**64 (the same on every machine)."""
    digest = hashlib.sha256(f"{seed}:{speaker}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def resplit_by_speaker(table: pd.DataFrame, seed: int, test_fraction: float,
                       train_split: str = "train", test_split: str = "dev") -> pd.DataFrame:
    """The table with every row of ``train_split`` and ``test_split`` re-assigned by its
    speaker: to ``test_split`` when :func:`speaker_draw` of the speaker is below
    ``test_fraction``, else to ``train_split``; rows of other splits are left as they are.

    Speaker-disjoint by construction, over every source of the table at once (give
    speakers shared identities first: ``speaker_map``). Rows without a speaker, or a
    draw that leaves one side empty, are a :class:`DataError`.
    """
    rows = table["split"].isin([train_split, test_split]).to_numpy()
    speakers = table["speaker"].astype(str)
    blank = rows & (speakers.str.strip() == "").to_numpy()
    if blank.any():
        where = (f" (source {', '.join(sorted(set(table.loc[blank, 'source'])))})"
                 if "source" in table.columns else "")
        raise DataError(f"data.resplit_by_speaker places speakers, but {int(blank.sum())} "
                        f"utterance(s){where} have no speaker id; give every row a speaker")
    drawn = {s: speaker_draw(s, seed) < test_fraction for s in set(speakers[rows])}
    to_test = rows & speakers.map(drawn).eq(True).to_numpy()
    n_test = len({s for s, t in drawn.items() if t})
    if n_test == 0 or n_test == len(drawn):
        raise DataError(f"data.resplit_by_speaker (seed {seed}, test_fraction "
                        f"{test_fraction:g}) puts {n_test} of {len(drawn)} speakers in the test "
                        "split; one side is empty: choose another seed or test_fraction")
    out = table.copy()
    out.loc[rows & ~to_test, "split"] = train_split
    out.loc[to_test, "split"] = test_split
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


def _check_attack_names(attacks: Sequence[str]) -> None:
    """Every attack name usable as a column and file name."""
    for a in attacks:
        try:
            check_name(a, "attack name")
        except BadNameError as exc:  # it becomes a column of eer_matrix.csv
            raise DataError(f"{exc} (attack names become columns and file names; rename the "
                            "attack in the data)") from None


@dataclass(frozen=True)
class _Bonafide:
    """The bona fide rows every experience shares: train, test (capped), calibration."""

    train: np.ndarray
    test: np.ndarray
    calibration: np.ndarray


def _bonafide(table: pd.DataFrame, attacks: Sequence[str], train_split: str, test_split: str,
              seed: int, max_bonafide_test: int | None, calibration_split: str | None
              ) -> _Bonafide:
    """The bona fide rows of the run; errors name the empty split."""
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
    return _Bonafide(bona_train, bona_test, bona_cal)


def _bonafide_shares(bona_train: np.ndarray, n: int, bonafide_sharing: str,
                     seed: int) -> list[np.ndarray]:
    """The bona fide training rows of each of ``n`` experiences."""
    if bonafide_sharing == "all":
        return [bona_train] * n
    if bonafide_sharing == "disjoint":
        shuffled = bona_train.copy()
        _stable_rng(seed, "bona-shares").shuffle(shuffled)
        shares = [np.sort(s) for s in np.array_split(shuffled, n)]
        if min(len(s) for s in shares) == 0:
            raise DataError(f"{len(bona_train)} bona fide training utterances cannot be shared "
                            f"disjointly among {n} experiences")
        return shares
    raise DataError(f"bonafide_sharing must be 'all' or 'disjoint', got {bonafide_sharing!r}")


@dataclass(frozen=True)
class _AttackRows:
    """One attack's spoof rows of the train, test and calibration splits (capped)."""

    train: np.ndarray
    test: np.ndarray
    calibration: np.ndarray


def _attack_rows(table: pd.DataFrame, a: str, train_split: str, test_split: str, seed: int,
                 max_train_per_attack: int | None, max_test_per_attack: int | None,
                 calibration_split: str | None) -> _AttackRows:
    is_bona = (table["label"] == BONAFIDE).to_numpy()
    split = table["split"].to_numpy()
    own = ~is_bona & (table["attack"].to_numpy() == a)
    tr = _subsample(np.flatnonzero(own & (split == train_split)), max_train_per_attack,
                    _stable_rng(seed, "train", a))
    te = _subsample(np.flatnonzero(own & (split == test_split)), max_test_per_attack,
                    _stable_rng(seed, "test", a))
    cal = np.empty(0, dtype=np.int64)
    if calibration_split is not None:
        cal = _subsample(np.flatnonzero(own & (split == calibration_split)),
                         max_test_per_attack, _stable_rng(seed, "calibration", a))
    return _AttackRows(tr, te, cal)


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
    _check_attack_names(attacks)
    dup = sorted({a for a in attacks if list(attacks).count(a) > 1})
    if dup:
        raise DataError(f"attacks listed twice in the experience order: {', '.join(dup)}")
    known = set(table.loc[table["label"] == SPOOF, "attack"])
    unknown = [a for a in attacks if a not in known]
    if unknown:
        raise DataError(f"attack(s) {', '.join(unknown)} not in the data "
                        f"(it has: {', '.join(sorted(known)) or 'no spoof rows'})"
                        + did_you_mean(unknown[0], known))
    bona = _bonafide(table, attacks, train_split, test_split, seed, max_bonafide_test,
                     calibration_split)
    shares = _bonafide_shares(bona.train, len(attacks), bonafide_sharing, seed)
    plans = []
    for a, share in zip(attacks, shares, strict=True):
        rows = _attack_rows(table, a, train_split, test_split, seed, max_train_per_attack,
                            max_test_per_attack, calibration_split)
        if len(rows.train) == 0:
            raise DataError(f"attack {a}: no spoof utterances in the train split {train_split!r}")
        if len(rows.test) == 0:
            raise DataError(f"attack {a}: no spoof utterances in the test split {test_split!r}")
        cal = (np.concatenate([rows.calibration, bona.calibration])
               if calibration_split is not None else rows.calibration)
        plans.append(ExperiencePlan(a, np.concatenate([rows.train, share]),
                                    np.concatenate([rows.test, bona.test]), cal))
    return plans


def family_candidates(table: pd.DataFrame, splits: Sequence[str]) -> list[str]:
    """The attacks a family pattern may name: every spoof attack with rows in ``splits``,
    sorted."""
    spoof = table[(table["label"] == SPOOF) & table["split"].isin(list(splits))]
    return sorted(spoof["attack"].unique())


def resolve_families(families: Mapping[str, Sequence[str]], attacks: Sequence[str]
                     ) -> dict[str, tuple[str, ...]]:
    """Each family's attacks: the names of ``attacks`` its fnmatch patterns match
    (case-sensitive), pattern by pattern, each pattern's matches sorted.

    A pattern that matches no attack, or an attack that two families claim, is a
    :class:`DataError` naming them; attacks of no family are simply not learned.
    """
    owner: dict[str, str] = {}
    out: dict[str, tuple[str, ...]] = {}
    for family, patterns in families.items():
        members: list[str] = []
        for pattern in patterns:
            hits = [a for a in sorted(attacks) if fnmatch.fnmatchcase(a, pattern)]
            if not hits:
                raise DataError(f"data.families.{family}: {pattern!r} matches no attack of the "
                                f"data (it has: {', '.join(sorted(attacks)) or 'none'})"
                                + did_you_mean(pattern, attacks))
            for a in hits:
                if a in owner and owner[a] != family:
                    raise DataError(f"attack {a} is in two families, {owner[a]} and {family} "
                                    f"(pattern {pattern!r}); an attack is learned once")
                owner[a] = family
                if a not in members:
                    members.append(a)
        out[family] = tuple(members)
    return out


@dataclass(frozen=True)
class FamilyPlans:
    """A sequence of families: one training experience per family, one test experience
    per attack (the EER matrix keeps a column per system)."""

    stages: list[ExperiencePlan]  # per family, in order: its attacks' training rows + bona fide
    plans: list[ExperiencePlan]  # per attack with test rows, family by family
    families: dict[str, tuple[str, ...]]  # learned family -> its attacks that have a column
    held_out: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tested, never learned


def plan_families(
    table: pd.DataFrame,
    families: Mapping[str, Sequence[str]],
    train_split: str = "train",
    test_split: str = "dev",
    bonafide_sharing: str = "all",
    seed: int = 0,
    max_train_per_attack: int | None = None,
    max_test_per_attack: int | None = None,
    max_bonafide_test: int | None = None,
    calibration_split: str | None = None,
    held_out: Sequence[str] = (),
) -> FamilyPlans:
    """The experiences of resolved ``families`` (family -> attacks, :func:`resolve_families`).

    Training experience k is family k: the training spoofs of its attacks (each capped
    by ``max_train_per_attack`` as in :func:`plan_experiences`) and the bona fide
    (all of it, or a disjoint share per family). Test experiences stay one per attack,
    planned exactly as :func:`plan_experiences` plans them, so the stage x attack
    matrix keeps a column per system; an attack without test rows (all its speakers
    on the training side) is learned with its family and gets no column, an attack
    without training rows is tested from its family's stage on. A family with no
    training spoofs or no tested attack is a :class:`DataError` naming it. The
    ``held_out`` families are only tested (their columns come after the learned
    families'), never learned: systems unseen in training.
    """
    attacks = [a for members in families.values() for a in members]
    _check_attack_names(attacks)
    bona = _bonafide(table, attacks, train_split, test_split, seed, max_bonafide_test,
                     calibration_split)
    learned = [f for f in families if f not in held_out]
    shares = _bonafide_shares(bona.train, len(learned), bonafide_sharing, seed)
    stages: list[ExperiencePlan] = []
    plans: list[ExperiencePlan] = []
    tested: dict[str, tuple[str, ...]] = {}
    order = learned + [f for f in families if f in held_out]
    for family, share in zip(order, shares + [bona.train] * (len(order) - len(learned)),
                             strict=True):
        members = families[family]
        spoof_train: list[np.ndarray] = []
        tested[family] = ()
        for a in members:
            rows = _attack_rows(table, a, train_split, test_split, seed, max_train_per_attack,
                                max_test_per_attack, calibration_split)
            spoof_train.append(rows.train)
            if len(rows.test) == 0:
                continue
            cal = (np.concatenate([rows.calibration, bona.calibration])
                   if calibration_split is not None else rows.calibration)
            plans.append(ExperiencePlan(a, np.concatenate([rows.train, share]),
                                        np.concatenate([rows.test, bona.test]), cal))
            tested[family] += (a,)
        if not tested[family]:
            raise DataError(f"family {family} ({', '.join(members)}): no spoof utterances in "
                            f"the test split {test_split!r}, nothing to measure it on")
        if family in held_out:
            continue
        train = np.concatenate(spoof_train) if spoof_train else np.empty(0, dtype=np.int64)
        if len(train) == 0:
            raise DataError(f"family {family} ({', '.join(members)}): no spoof utterances in "
                            f"the train split {train_split!r}")
        stages.append(ExperiencePlan(family, np.concatenate([np.sort(train), share]),
                                     np.empty(0, dtype=np.int64)))
    return FamilyPlans(stages, plans, {f: tested[f] for f in learned},
                       {f: tested[f] for f in families if f in held_out})


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
    ``experience_by: source``: the source names in their order; with ``experience_by:
    family``: the attacks of every family, family by family)."""
    if cfg.experience_by == "source":
        return tuple(s.name for s in cfg.sources)
    if cfg.experience_by == "family":
        splits = [cfg.train_split, cfg.test_split]
        resolved = resolve_families(cfg.families, family_candidates(table, splits))
        return tuple(a for members in resolved.values() for a in members)
    if cfg.attacks:
        return cfg.attacks
    if len(cfg.sources) > 1:  # source by source (list order), each one's attacks sorted
        return tuple(a for s in cfg.sources
                     for a in default_attacks(table[table["source"] == s.name], cfg.train_split))
    trained = default_attacks(table, cfg.train_split)
    return trained + tuple(a for a in cfg.eval_only_attacks if a not in trained)
