"""``DFWFPlugin``: Detecting Fake Without Forgetting as an Avalanche plugin.

Drop it into any Avalanche strategy (Naive, Replay, ...)::

    from cl_spoof.strategies import DFWFPlugin
    strategy = Naive(model=model, optimizer=opt, criterion=CrossEntropyLoss(),
                     plugins=[DFWFPlugin(kd_weight=1.0, psa_weight=1.0)])

From the second experience on it adds ``kd_weight * L_kd + psa_weight * L_psa``
against a frozen copy of the model after the previous experience (the
regulariser and the losses are in :mod:`cl_spoof.strategies.methods.dfwf.regularization`).
Importing this module loads torch, Avalanche and a few small cl-spoof modules —
no pandas, no audio I/O, no cl-spoof workflow. :data:`STATE` saves the teacher in
checkpoints.

Cost: the student's features are captured by forward hooks during Avalanche's
own forward (no second student pass); the only extra work is one ``no_grad``
forward of the teacher per mini-batch, run in ``before_forward`` on
``strategy.mb_x`` (so put DFWF after any plugin that changes the batch there).
Hooks are attached only while they are needed, so ``copy.deepcopy`` of the
model never drags the plugin or earlier teachers along.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from avalanche.core import SupervisedPlugin
from torch.utils.hooks import RemovableHandle

from cl_spoof.strategies.methods.dfwf.regularization import (
    DetectingFakeWithoutForgetting,
    TeacherOutput,
    _Capture,
    remove_hooks,
)
from cl_spoof.strategies.state import StateAdapter, find_plugin

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

__all__ = ["STATE", "DFWFPlugin"]

logger = logging.getLogger(__name__)


class DFWFPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Detecting Fake Without Forgetting: KD + positive sample alignment to the last model.

    :param kd_weight: weight of the distillation term (every sample).
    :param temperature: softmax temperature of the distillation (the term is scaled by T²).
    :param psa_weight: weight of the positive-sample-alignment term (bona fide only).
    :param distance: ``"cosine"`` or ``"l2"`` distance between aligned features.
    :param layers: names of the submodules whose outputs are aligned (as
        ``model.get_submodule``; several are averaged), or ``None`` for the input of
        the model's last ``nn.Linear`` — the utterance embedding its classifier head sees.
    :param bonafide_class: the target index of genuine speech (only those samples are
        aligned).

    The teacher is a frozen copy (eval mode, no gradients) of the model taken in
    ``after_training_exp``; it never changes during an experience.

    Records, for logs: ``history`` (one dict per experience: mean ``kd``, ``psa`` and
    ``extra_loss`` added, ``bonafide_seen``, ``active``) and ``warnings`` (e.g. an
    experience whose batches held no bona fide sample, so PSA was 0). Experience
    numbers are Avalanche's ``current_experience``.
    """

    _kd_sum: torch.Tensor | float
    _psa_sum: torch.Tensor | float
    _extra_sum: torch.Tensor | float
    _bona_seen: torch.Tensor | int
    _iterations: int

    def __init__(
        self,
        kd_weight: float = 1.0,
        temperature: float = 2.0,
        psa_weight: float = 1.0,
        distance: str = "cosine",
        layers: Sequence[str] | None = None,
        bonafide_class: int = 1,
    ) -> None:
        """Validate the settings; ``ConfigError`` (a ``ValueError``) names the argument."""
        super().__init__()
        self.dfwf = DetectingFakeWithoutForgetting(kd_weight, temperature, psa_weight,
                                                   distance, layers, bonafide_class)
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._capture = _Capture()
        self._handles: list[RemovableHandle] = []
        self._teacher_out: TeacherOutput | None = None
        self._reset_stats()

    @property
    def teacher(self) -> torch.nn.Module | None:
        """The frozen previous model (``None`` before the first experience ends)."""
        return self.dfwf.teacher

    # ------------------------------------------------------------------ callbacks

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Resolve the aligned layers (fail fast on a bad name); reset the stats."""
        remove_hooks(self._handles)
        self.dfwf.pre_adapt(strategy.model, strategy.device)
        self._reset_stats()

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Run the teacher on the batch, then hook the student's layers for its forward.

        The teacher runs here, before the student's graph exists, rather than in
        ``before_backward``: measured on CPU, that placement made the extra cost per
        iteration about a third smaller (fewer fresh allocations while the graph lives).
        """
        self._teacher_out = None
        self._capture.clear()
        if not self.dfwf.active:
            return
        self._teacher_out = self.dfwf.teacher_forward(strategy.mb_x, strategy.mb_task_id)
        self._handles = self.dfwf.capture_student(self._capture)

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Detach the hooks right after the student's forward."""
        remove_hooks(self._handles)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Add ``kd_weight * L_kd + psa_weight * L_psa`` to ``strategy.loss``."""
        is_bona = strategy.mb_y == self.dfwf.bonafide_class
        self._bona_seen = self._bona_seen + is_bona.sum()  # stays on device: no sync
        self._iterations += 1
        if not self.dfwf.active or self._teacher_out is None:
            return
        teacher_out, self._teacher_out = self._teacher_out, None
        extra, kd, psa = self.dfwf.penalty(strategy.mb_output, strategy.mb_y, teacher_out,
                                           self._capture.get)
        self._capture.clear()
        if kd is not None:
            self._kd_sum = self._kd_sum + kd.detach()
        if psa is not None:
            self._psa_sum = self._psa_sum + psa.detach()
        self._extra_sum = self._extra_sum + extra.detach()
        strategy.loss = strategy.loss + extra

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Record the experience's stats, then refresh the teacher (no hooks attached)."""
        remove_hooks(self._handles)
        self._capture.clear()
        self._teacher_out = None
        self._record(strategy)
        self.dfwf.post_adapt(strategy.model)

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs: ``{"teacher": the teacher's state dict, or None}``."""
        return self.dfwf.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the teacher is rebuilt at the next experience)."""
        self.dfwf.load_state_dict(state)

    # ------------------------------------------------------------------ internals

    def _reset_stats(self) -> None:
        # Sums stay tensors on the training device until the experience ends (one sync).
        self._kd_sum = 0.0
        self._psa_sum = 0.0
        self._extra_sum = 0.0
        self._bona_seen = 0
        self._iterations = 0

    def _record(self, strategy: Any) -> None:
        exp = strategy.experience
        index = getattr(exp, "current_experience", len(self.history))
        attack = getattr(exp, "attack", None)
        n = max(self._iterations, 1)
        bona = int(self._bona_seen)
        self.history.append({
            "experience": index,
            "attack": attack,
            "active": self.teacher is not None,
            "iterations": self._iterations,
            "bonafide_seen": bona,
            "kd": float(self._kd_sum) / n,
            "psa": float(self._psa_sum) / n,
            "extra_loss": float(self._extra_sum) / n,
        })
        if self.dfwf.uses_psa and bona == 0:
            message = (f"experience {index} (attack {attack if attack is not None else '?'}) "
                       "has no bona fide training samples: PSA = 0")
            self.warnings.append(message)
            logger.warning(message)


# --------------------------------------------------------------------------- checkpoints


def _export(strategy: SupervisedTemplate) -> dict:
    teacher = find_plugin(strategy, DFWFPlugin).state_dict()["teacher"]
    return {} if teacher is None else {"dfwf_teacher": teacher}


def _restore(strategy: SupervisedTemplate, state: dict, completed: int,
             train_stream: Sequence[Any] | None) -> None:
    teacher = state.get("dfwf_teacher")
    if teacher is None and completed > 0:
        # The teacher after a stage is a copy of the model after that stage, so a run of
        # another strategy (add-attack switching to DFWF) gets the model it has now.
        teacher = {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}
    find_plugin(strategy, DFWFPlugin).load_state_dict({"teacher": teacher})


def _start(strategy: SupervisedTemplate) -> None:
    """The teacher is the model now: a pretrained starting model teaches the first
    experience."""
    find_plugin(strategy, DFWFPlugin).dfwf.post_adapt(strategy.model)


#: The teacher in checkpoints (rebuilt from the model when a run of another strategy
#: switches to DFWF; the pretrained model before the first experience of a run that
#: starts from one).
STATE = StateAdapter("dfwf", _export, _restore, _start)
