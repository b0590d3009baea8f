"""Continual-learning summaries of a stage x attack EER matrix (EER in %).

Conventions (EER points; lower EER is better):

- ``avg_eer_learned[k]``: mean EER after stage k over the attacks learned in
  stages 0..k;
- ``final_avg_eer``: mean EER after the last stage over all attacks;
- ``forgetting[a]`` = EER of ``a`` after the last stage minus the best (lowest)
  EER ``a`` had from the stage that learned it up to the stage before the last:
  **positive = forgot**; defined for attacks learned before the last stage;
- ``bwt`` (backward transfer) = mean over those attacks of
  ``EER(learned stage) - EER(last stage)``: **negative = forgot** (the sign of
  Lopez-Paz & Ranzato's accuracy BWT, where forgetting is negative too);
- ``fwt`` (forward transfer, :func:`forward_transfer`) = mean over the attacks learned
  after the first stage of ``reference - EER(the stage just before the one that learns
  it)``, the reference being chance (50 %): **positive = the earlier stages already
  detect the attack better than chance** (the sign of Lopez-Paz & Ranzato's FWT).

A stage may learn several attacks at once (a family of attacks, ``families``: stage
label -> the attacks it learns): each attack then counts as learned at its family's
stage, in every metric above; a label that is no family stands for the attack of
that name, and ``joint`` (a single stage) for every attack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: EER (%) of a detector that knows nothing about an attack: the reference of
#: :func:`forward_transfer` (the expected EER of a randomly initialised model).
CHANCE_EER = 50.0


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


Families = Mapping[str, Sequence[str]]


def stage_attacks(label: str, attacks: Sequence[str], families: Families | None = None
                  ) -> list[str]:
    """The columns of ``attacks`` a stage labelled ``label`` learns: its family's members,
    else the attack of that name (none when it is no column)."""
    if families is not None and label in families:
        return [a for a in families[label] if a in attacks]
    return [label] if label in attacks else []


def learned_at(attacks: Sequence[str], learned: Sequence[str],
               families: Families | None = None) -> dict[str, int | None]:
    """The stage that learned each attack (None: not learned; 0 for every attack of a
    single joint stage)."""
    if len(learned) == 1 and not stage_attacks(learned[0], attacks, families):
        return dict.fromkeys(attacks, 0)  # joint training learns every column at once
    out: dict[str, int | None] = dict.fromkeys(attacks)
    for k, label in enumerate(learned):
        for a in stage_attacks(label, attacks, families):
            if out[a] is None:
                out[a] = k
    return out


def summarize(matrix: pd.DataFrame, learned: Sequence[str],
              families: Families | None = None) -> dict:
    """Summary metrics of an EER matrix.

    ``matrix`` has one row per training stage (in order) and one column per
    attack; ``learned[k]`` is the label of stage k: the attack it learned, a family of
    ``families`` (whose attacks it learned together), or ``"joint"`` for a single
    joint stage, which learns every column at once. With ``families`` the result
    holds them too (``families``: label -> its attacks).
    """
    attacks = list(matrix.columns)
    values = matrix.to_numpy(dtype=np.float64)
    n_stages = values.shape[0]
    joint = n_stages == 1 and learned and not stage_attacks(learned[0], attacks, families)
    avg_learned: list[float | None] = []
    for k in range(n_stages):
        cols = attacks if joint else [attacks.index(a) for label in learned[: k + 1]
                                      for a in stage_attacks(label, attacks, families)]
        idx = list(range(len(attacks))) if joint else cols
        avg_learned.append(_nan_to_none(float(np.nanmean(values[k, idx]))) if idx else None)
    final = values[-1]
    out: dict = {
        "stages": n_stages,
        "attacks": attacks,
        "learned": list(learned),
        "avg_eer_learned": avg_learned,
        "final_avg_eer": _nan_to_none(float(np.nanmean(final))),
        "final_eer": {a: _nan_to_none(float(v)) for a, v in zip(attacks, final, strict=True)},
        "forgetting": {},
        "max_forgetting": None,
        "bwt": None,
    }
    if families is not None:
        out["families"] = {f: list(members) for f, members in families.items()}
    if joint or n_stages < 2:
        return out
    forgetting: dict[str, float | None] = {}
    bwt_terms: list[float] = []
    for k, label in enumerate(learned[:-1]):
        for attack in stage_attacks(label, attacks, families):
            j = attacks.index(attack)
            history = values[k:n_stages - 1, j]
            history = history[~np.isnan(history)]
            if history.size == 0 or np.isnan(final[j]):
                forgetting[attack] = None  # not evaluated (e.g. data no longer available)
                continue
            forgetting[attack] = float(final[j]) - float(history.min())
            if not np.isnan(values[k, j]):
                bwt_terms.append(float(values[k, j]) - float(final[j]))
    out["forgetting"] = forgetting
    valid = [v for v in forgetting.values() if v is not None]
    out["max_forgetting"] = max(valid) if valid else None
    out["bwt"] = float(np.mean(bwt_terms)) if bwt_terms else None
    return out


def average_forgetting(matrix: pd.DataFrame, learned: Sequence[str],
                       stage: int | None = None, *,
                       families: Families | None = None) -> float | None:
    """Average forgetting (EER points) after ``stage`` (default: the last one).

    The usual continual-learning definition (Chaudhry et al., "Riemannian Walk
    for Incremental Learning", ECCV 2018: ``F_k = mean_j max_l (a_lj - a_kj)``),
    with EER for accuracy: for each attack ``j`` learned at a stage before ``k``,
    the forgetting is ``EER[k, j]`` minus the lowest EER ``j`` had from the stage
    that learned it up to stage ``k - 1`` (the largest drop from its best);
    ``F_k`` is the mean over those attacks that were evaluated. Positive = forgot.
    At the last stage this is the mean of :func:`summarize`'s ``forgetting``; with
    ``families`` every attack of a family counts as learned at its family's stage.
    Returns ``None`` for a single or joint stage, or when nothing was evaluated.
    """
    attacks = list(matrix.columns)
    values = matrix.to_numpy(dtype=np.float64)
    n_stages = values.shape[0]
    k = n_stages - 1 if stage is None else (stage if stage >= 0 else n_stages + stage)
    if not 0 <= k < n_stages:
        raise ValueError(f"stage {stage} out of range for {n_stages} stage(s)")
    if k < 1:
        return None
    terms: list[float] = []
    for stage_k, label in enumerate(learned[:k]):
        for attack in stage_attacks(label, attacks, families):
            j = attacks.index(attack)
            history = values[stage_k:k, j]
            history = history[~np.isnan(history)]
            if history.size == 0 or np.isnan(values[k, j]):
                continue
            terms.append(float(values[k, j]) - float(history.min()))
    return float(np.mean(terms)) if terms else None


def forward_transfer(matrix: pd.DataFrame, learned: Sequence[str],
                     reference: float | Mapping[str, float] = CHANCE_EER,
                     families: Families | None = None) -> float | None:
    """Forward transfer (EER points): how well the stages before an attack's own stage
    already detect it.

    GEM's definition (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
    Learning", NeurIPS 2017: ``FWT = 1/(T-1) sum_{i=2..T} (R[i-1, i] - b_i)``, with
    ``R[i-1, i]`` the accuracy on task i after learning task i-1 and ``b_i`` that of a
    randomly initialised model) with EER for accuracy, the difference turned round so
    that the sign stays GEM's: for each attack ``a`` learned at a stage ``k >= 1`` (with
    ``families``, every member of the family a stage learns) the term is
    ``reference[a] - EER[k - 1, a]``; FWT is the mean of the terms that were
    evaluated. **Positive = the detector already separated the attack better than the
    reference before learning it.** The reference is chance (50 %) by default, the
    expected EER of a randomly initialised detector; give the EERs of a measured
    starting model (a mapping attack -> EER %) to measure transfer against it instead.
    Returns ``None`` for a single or joint stage, or when nothing was evaluated.
    """
    attacks = list(matrix.columns)
    values = matrix.to_numpy(dtype=np.float64)
    terms: list[float] = []
    for k in range(1, min(len(learned), values.shape[0])):
        for attack in stage_attacks(learned[k], attacks, families):
            before = values[k - 1, attacks.index(attack)]
            ref = reference.get(attack) if isinstance(reference, Mapping) else reference
            if ref is None or np.isnan(before) or np.isnan(ref):
                continue
            terms.append(float(ref) - float(before))
    return float(np.mean(terms)) if terms else None
