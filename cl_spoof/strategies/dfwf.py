"""DFWF as an Avalanche plugin: distillation + bona fide alignment to the previous model.

"Detecting Fake Without Forgetting" (Ma et al., "Continual Learning for Fake
Audio Detection", Interspeech 2021) learns each new attack with
``L = L_ce + kd_weight * L_kd + psa_weight * L_psa`` where the teacher is a
frozen copy of the model after the previous experience (see
:mod:`cl_spoof.strategies.losses`). :class:`DFWFPlugin` adds the two terms in
``before_backward``, so it composes with any strategy (Naive, Replay, ...).

Cost: the student's embeddings are captured by forward hooks during
Avalanche's own forward (no second student pass); the only extra work is one
``no_grad`` forward of the teacher per mini-batch, run in ``before_forward`` on
``strategy.mb_x`` (so put DFWF after any plugin that changes the batch there).

Hooks are closures over a small :class:`_Capture` holder, never bound methods
of the plugin, and are attached only while they are needed (around the
student's forward, around the teacher's forward): ``copy.deepcopy`` of the
model never drags the plugin or earlier teachers along.
"""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn
from torch.utils.hooks import RemovableHandle

from cl_spoof.errors import ConfigError
from cl_spoof.strategies.losses import DISTANCES, kd_loss, psa_loss

__all__ = ["DFWFPlugin", "resolve_layers", "unwrap_model"]

logger = logging.getLogger(__name__)

BONAFIDE_TARGET = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DataParallel`` / ``DistributedDataParallel`` wrappers."""
    while isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def resolve_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """Map layer names to submodules of (unwrapped) ``model``; ConfigError names a bad one."""
    model = unwrap_model(model)
    found: dict[str, nn.Module] = {}
    for name in names:
        try:
            found[name] = model.get_submodule(name)
        except AttributeError:
            valid = [n for n, _ in model.named_modules() if n]
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            shown = ", ".join(valid[:12]) + (", ..." if len(valid) > 12 else "")
            raise ConfigError(
                f"unknown layer {name!r} in strategy.psa_layers for "
                f"{type(model).__name__}{hint} (valid layer names include: {shown})"
            ) from None
    return found


class _Capture:
    """Latest output of each hooked layer, per device (DataParallel runs one replica each)."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[torch.device, torch.Tensor]] = {}

    def hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        """A forward hook storing the output of layer ``name`` (a closure, not a method)."""
        outputs = self.outputs

        def store(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, tuple | list):  # e.g. nn.GRU returns (output, h_n)
                output = output[0]
            outputs.setdefault(name, {})[output.device] = output

        return store

    def attach(self, layers: dict[str, nn.Module]) -> list[RemovableHandle]:
        """Register a hook on every layer; returns the handles to remove them."""
        return [module.register_forward_hook(self.hook(n)) for n, module in layers.items()]

    def get(self, name: str) -> torch.Tensor:
        """The layer's output of the last forward (replica chunks joined in device order)."""
        per_device = self.outputs.get(name)
        if not per_device:
            raise ConfigError(
                f"layer {name!r} in strategy.psa_layers did not run during the model's "
                "forward; choose a layer on the path from input to logits"
            )
        if len(per_device) == 1:
            return next(iter(per_device.values()))
        ordered = sorted(per_device.items(), key=lambda kv: (kv[0].type, kv[0].index or 0))
        first = ordered[0][1]
        return torch.cat([t.to(first.device) for _, t in ordered], dim=0)

    def clear(self) -> None:
        """Drop stored outputs (frees the activations they keep alive)."""
        self.outputs.clear()


def _remove(handles: list[RemovableHandle]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


def _freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm stats fixed, no dropout), no gradients: a fixed teacher."""
    model.eval()
    model.requires_grad_(False)
    for p in model.parameters():
        p.grad = None
    return model


class DFWFPlugin(SupervisedPlugin, supports_distributed=True):
    """Detecting Fake Without Forgetting: KD + positive sample alignment to the last model.

    From the second experience on, ``before_forward`` runs the teacher on the batch and
    ``before_backward`` adds
    ``kd_weight * kd_loss(student logits, teacher logits, temperature)`` (every sample)
    plus ``psa_weight * mean over layers of psa_loss(student, teacher, y == 1, distance)``
    (bona fide samples only) to ``strategy.loss``. ``layers`` name submodules (as
    ``model.get_submodule``; default the ``embedding`` hook point of
    :class:`~cl_spoof.models.resnet_gru.ResNetGRU`); a layer whose output is a tuple
    contributes its first element.

    The teacher is a frozen copy (eval mode, no gradients) of the model taken in
    ``after_training_exp``; it never changes during an experience.

    Records, for logs: ``history`` (one dict per experience: mean ``kd``, ``psa`` and
    ``extra_loss`` added, ``bonafide_seen``, ``active``) and ``warnings`` (e.g. an
    experience whose batches held no bona fide sample, so PSA was 0). Experience
    numbers are Avalanche's ``current_experience`` (0-based, as the runner's stages).
    """

    def __init__(
        self,
        kd_weight: float = 1.0,
        temperature: float = 2.0,
        psa_weight: float = 1.0,
        distance: str = "cosine",
        layers: Sequence[str] = ("embedding",),
    ) -> None:
        """Validate the settings; ConfigError names the offending one."""
        super().__init__()
        if kd_weight < 0 or psa_weight < 0:
            raise ConfigError("DFWF kd_weight and psa_weight must not be negative")
        if temperature <= 0:
            raise ConfigError(f"DFWF temperature must be positive; got {temperature}")
        if distance not in DISTANCES:
            raise ConfigError(f"DFWF distance must be one of {DISTANCES}; got {distance!r}")
        layers = tuple(layers)
        if psa_weight > 0 and not layers:
            raise ConfigError("DFWF needs at least one layer for PSA (strategy.psa_layers)")
        self.kd_weight = float(kd_weight)
        self.temperature = float(temperature)
        self.psa_weight = float(psa_weight)
        self.distance = distance
        self.layers: tuple[str, ...] = layers
        self.teacher: nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._teacher_layers: dict[str, nn.Module] = {}
        self._student_layers: dict[str, nn.Module] = {}
        self._capture = _Capture()
        self._handles: list[RemovableHandle] = []
        self._teacher_out: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None
        self._reset_stats()

    # ------------------------------------------------------------------ callbacks

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Resolve the layers (fail fast on a bad name) and reset the experience's stats."""
        _remove(self._handles)
        self._student_layers = resolve_layers(strategy.model, self.layers)
        if self.teacher is not None:
            self.teacher.to(strategy.device)
        self._reset_stats()

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Run the teacher on the batch, then hook the student's layers for its forward.

        The teacher runs here, before the student's graph exists, rather than in
        ``before_backward``: measured on CPU, that placement made the extra cost per
        iteration about a third smaller (fewer fresh allocations while the graph lives).
        """
        self._teacher_out = None
        self._capture.clear()
        if not self._active():
            return
        self._teacher_out = self._teacher_forward(strategy.mb_x)
        if self._uses_psa():
            self._handles = self._capture.attach(self._student_layers)

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Detach the hooks right after the student's forward."""
        _remove(self._handles)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Add ``kd_weight * L_kd + psa_weight * L_psa`` to ``strategy.loss``."""
        is_bona = strategy.mb_y == BONAFIDE_TARGET
        self._bona_seen = self._bona_seen + is_bona.sum()  # stays on device: no sync
        self._iterations += 1
        if not self._active() or self._teacher_out is None:
            return
        teacher_logits, teacher_feats = self._teacher_out
        self._teacher_out = None
        extra = strategy.loss.new_zeros(())
        if self.kd_weight > 0:
            kd = kd_loss(strategy.mb_output, teacher_logits, self.temperature)
            extra = extra + self.kd_weight * kd
            self._kd_sum = self._kd_sum + kd.detach()
        if self._uses_psa():
            terms = [
                psa_loss(self._capture.get(name), teacher_feats[name], is_bona, self.distance)
                for name in self.layers
            ]
            psa = torch.stack(terms).mean()
            extra = extra + self.psa_weight * psa
            self._psa_sum = self._psa_sum + psa.detach()
        self._capture.clear()
        self._extra_sum = self._extra_sum + extra.detach()
        strategy.loss = strategy.loss + extra

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Record the experience's stats, then refresh the teacher (no hooks attached)."""
        _remove(self._handles)
        self._capture.clear()
        self._teacher_out = None
        self._record(strategy)
        self.teacher = None  # free the old teacher before copying
        self.teacher = _freeze(copy.deepcopy(unwrap_model(strategy.model)))
        self._teacher_layers = resolve_layers(self.teacher, self.layers)

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """The teacher's ``state_dict`` (None before the first experience ends)."""
        return None if self.teacher is None else self.teacher.state_dict()

    def load_teacher_state(
        self, model_template: nn.Module, state: dict[str, torch.Tensor] | None
    ) -> None:
        """Restore the teacher from :meth:`state_dict`; ``model_template`` gives the
        architecture (a copy is made, the template is left untouched)."""
        if state is None:
            self.teacher = None
            self._teacher_layers = {}
            return
        teacher = copy.deepcopy(unwrap_model(model_template))
        teacher.load_state_dict(state)
        self.teacher = _freeze(teacher)
        self._teacher_layers = resolve_layers(self.teacher, self.layers)

    # ------------------------------------------------------------------ internals

    def _active(self) -> bool:
        return self.teacher is not None and (self.kd_weight > 0 or self.psa_weight > 0)

    def _uses_psa(self) -> bool:
        return self.teacher is not None and self.psa_weight > 0

    def _teacher_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher logits and layer outputs from one no-grad forward."""
        assert self.teacher is not None
        capture = _Capture()
        hooked = self._uses_psa()
        handles = capture.attach(self._teacher_layers) if hooked else []
        try:
            with torch.no_grad():
                logits = self.teacher(x)
        finally:
            _remove(handles)
        feats = {name: capture.get(name) for name in self._teacher_layers} if hooked else {}
        return logits, feats

    def _reset_stats(self) -> None:
        # Sums stay tensors on the training device until the experience ends (one sync).
        self._kd_sum: torch.Tensor | float = 0.0
        self._psa_sum: torch.Tensor | float = 0.0
        self._extra_sum: torch.Tensor | float = 0.0
        self._bona_seen: torch.Tensor | int = 0
        self._iterations = 0

    def _record(self, strategy: Any) -> None:
        exp = strategy.experience
        index = getattr(exp, "current_experience", len(self.history))
        attack = getattr(exp, "attack", None)
        active = self.teacher is not None
        n = max(self._iterations, 1)
        bona = int(self._bona_seen)
        self.history.append(
            {
                "experience": index,
                "attack": attack,
                "active": active,
                "iterations": self._iterations,
                "bonafide_seen": bona,
                "kd": float(self._kd_sum) / n,
                "psa": float(self._psa_sum) / n,
                "extra_loss": float(self._extra_sum) / n,
            }
        )
        if self._uses_psa() and bona == 0:
            message = (
                f"experience {index} (attack {attack if attack is not None else '?'}) "
                "has no bona fide training samples: PSA = 0"
            )
            self.warnings.append(message)
            logger.warning(message)
