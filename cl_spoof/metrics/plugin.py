"""Avalanche plugin metric that reports the EER of every test experience.

Each test experience of a cl-spoof benchmark holds bona fide trials plus the
spoof trials of one attack, so the per-experience EER is the per-attack EER.
Besides emitting the value through Avalanche's evaluation plugin, the metric
keeps every stage's scores so that the runner can write ASVspoof-style score
files and an EER matrix (training stage x attack) without a second pass.
Under ``torchrun`` every process scores a shard of each experience; the metric is
given a ``gather`` function (:meth:`cl_spoof.infra.context.RunContext.gather_shards`)
that puts the shards back together before the EER is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name

from cl_spoof.labels import BONAFIDE_TARGET, NO_ATTACK
from cl_spoof.metrics.eer import compute_eer, logits_to_scores

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

__all__ = ["EERPluginMetric", "ExperienceScores", "eer_metrics"]

#: ``gather(values, n)``: the ``n`` per-sample values of a dataset scored in shards.
Gather = Callable[[npt.NDArray, int], npt.NDArray]


def _no_gather(values: npt.NDArray, n: int) -> npt.NDArray:
    return values


@dataclass
class ExperienceScores:
    """Scores of one test experience (one attack) after one training stage.

    ``eer`` is in percent; ``eer`` and ``threshold`` are NaN when the
    experience lacks bona fide or spoof trials. ``utt_ids`` is ``None`` when
    the experience carries no ``utt_ids`` attribute.
    """

    stage: int
    exp_id: int
    attack: str
    scores: npt.NDArray[np.float64]
    targets: npt.NDArray[np.int64]
    utt_ids: list[str] | None
    eer: float
    threshold: float

    def to_frame(self) -> pd.DataFrame:
        """Rows ``utt_id, attack, key, score`` (attack ``"-"`` for bona fide).

        The layout matches :func:`cl_spoof.metrics.eer.eer_per_attack`.
        """
        is_bona = self.targets == BONAFIDE_TARGET
        utt = self.utt_ids if self.utt_ids is not None else [""] * len(self.scores)
        return pd.DataFrame(
            {
                "utt_id": utt,
                "attack": np.where(is_bona, NO_ATTACK, self.attack),
                "key": np.where(is_bona, "bonafide", "spoof"),
                "score": self.scores,
            }
        )


class EERPluginMetric(PluginMetric[float]):
    """Per-experience EER (%) on evaluation streams; keeps all scores.

    Score = ``logit[:, 1] - logit[:, 0]``; target 1 = bona fide, 0 = spoof.
    The buffers are reset in ``before_eval_exp``, filled in
    ``after_eval_iteration`` and turned into an EER in ``after_eval_exp``,
    which emits ``EER_Exp/eval_phase/<stream>_stream/Exp<id>``.

    The training stage of an evaluation is the index of the last training
    experience started (``strategy.clock.train_exp_counter`` read in
    ``before_training_exp``), so evaluation after training on experience k,
    and periodic evaluation during it, both land in stage k; an evaluation
    before any training is stage -1. A later evaluation of the same stage and
    attack replaces the earlier one.

    ``results[stage][attack]`` holds :class:`ExperienceScores`. The attack
    name is ``experience.attack`` if present, else ``"Exp<id>"``.

    ``gather`` joins the shards scored by several processes (one process: identity).
    """

    def __init__(self, gather: Gather = _no_gather) -> None:
        """Create an empty metric."""
        super().__init__()
        self.gather = gather
        self.results: dict[int, dict[str, ExperienceScores]] = {}
        self._stage: int | None = None
        self._scores: list[npt.NDArray[np.float64]] = []
        self._targets: list[npt.NDArray[np.int64]] = []
        self._last: float | None = None

    def __str__(self) -> str:
        """Metric name used in the emitted metric values."""
        return "EER_Exp"

    # --- Metric protocol -------------------------------------------------
    def reset(self) -> None:
        """Clear the buffers of the current experience (not ``results``)."""
        self._scores = []
        self._targets = []
        self._last = None

    def result(self) -> float | None:
        """EER (%) of the last finished experience, or ``None``."""
        return self._last

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Append one mini-batch of logits and targets to the buffers."""
        scores = logits_to_scores(logits.detach())
        if scores.shape[0] != targets.shape[0]:
            raise ValueError(
                f"size mismatch: {scores.shape[0]} logits vs {targets.shape[0]} targets"
            )
        self._scores.append(scores.double().cpu().numpy())
        self._targets.append(targets.detach().long().cpu().numpy())

    # --- callbacks -------------------------------------------------------
    def before_training_exp(self, strategy: SupervisedTemplate) -> None:
        """Remember which training stage subsequent evaluations belong to."""
        self._stage = int(strategy.clock.train_exp_counter)

    def before_eval_exp(self, strategy: SupervisedTemplate) -> None:
        """Start collecting a new test experience."""
        self.reset()

    def after_eval_iteration(self, strategy: SupervisedTemplate) -> None:
        """Collect the scores and targets of one evaluation mini-batch."""
        super().after_eval_iteration(strategy)
        assert strategy.mb_output is not None
        self.update(strategy.mb_output, strategy.mb_y)

    def after_eval_exp(self, strategy: SupervisedTemplate) -> MetricValue:
        """Compute the EER of the finished experience, store and emit it."""
        exp = strategy.experience
        assert exp is not None
        stage = self._current_stage(strategy)
        exp_id = int(exp.current_experience)
        attack = str(getattr(exp, "attack", None) or f"Exp{exp_id:03d}")
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        targets = np.concatenate(self._targets) if self._targets else np.zeros(0, np.int64)
        # Under torchrun each process scored a shard: the EER needs every trial.
        n = len(strategy.adapted_dataset)
        scores, targets = self.gather(scores, n), self.gather(targets, n)
        utt_ids = self._utt_ids(exp, len(scores), attack)

        bona = scores[targets == BONAFIDE_TARGET]
        spoof = scores[targets != BONAFIDE_TARGET]
        if bona.size and spoof.size:
            eer_frac, threshold = compute_eer(bona, spoof)
            eer = 100.0 * eer_frac
        else:
            eer, threshold = float("nan"), float("nan")

        self.results.setdefault(stage, {})[attack] = ExperienceScores(
            stage=stage,
            exp_id=exp_id,
            attack=attack,
            scores=scores,
            targets=targets,
            utt_ids=utt_ids,
            eer=eer,
            threshold=threshold,
        )
        self._last = eer
        name = get_metric_name(self, strategy, add_experience=True, add_task=False)
        return MetricValue(self, name, eer, strategy.clock.train_iterations)

    # --- helpers ---------------------------------------------------------
    def _current_stage(self, strategy: SupervisedTemplate) -> int:
        """Stage index for the running evaluation (see class docstring)."""
        if self._stage is not None:
            return self._stage
        return int(strategy.clock.train_exp_counter) - 1

    @staticmethod
    def _utt_ids(exp: object, n: int, attack: str) -> list[str] | None:
        """The experience's utt ids, checked against the number of scores."""
        ids = getattr(exp, "utt_ids", None)
        if ids is None:
            return None
        ids = [str(u) for u in ids]
        if len(ids) != n:
            raise ValueError(
                f"experience {attack!r} has {len(ids)} utt_ids but {n} scores were "
                "collected; evaluation must visit every sample once, in dataset order"
            )
        return ids

    def eer_matrix(self) -> pd.DataFrame:
        """EER (%) with rows = training stage, columns = attack (first-seen order)."""
        attacks: list[str] = []
        for stage in sorted(self.results):
            for attack in self.results[stage]:
                if attack not in attacks:
                    attacks.append(attack)
        stages = sorted(self.results)
        data = [
            [self.results[s][a].eer if a in self.results[s] else float("nan") for a in attacks]
            for s in stages
        ]
        frame = pd.DataFrame(data, index=pd.Index(stages, name="stage"), columns=attacks)
        frame.columns.name = "attack"
        return frame


def eer_metrics() -> list[PluginMetric]:
    """Plugin metrics for EER evaluation, to pass to ``EvaluationPlugin``."""
    return [EERPluginMetric()]
