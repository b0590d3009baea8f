"""DFWF ("Detecting Fake Without Forgetting", Ma et al., Interspeech 2021): losses and teacher.

DFWF trains on a new attack with ``L = L_ce + kd_weight * L_kd + psa_weight * L_psa``:

- :func:`kd_loss`: knowledge distillation from the model of the previous
  experience (the teacher) on every sample, so old decisions are kept;
- :func:`psa_loss`: positive sample alignment, a distance between the
  student's and the teacher's embeddings of the *bona fide* samples only,
  since genuine speech is assumed to look alike in every experience while
  spoofs legitimately change.

The two losses are pure functions of tensors (tested alone).
:class:`DetectingFakeWithoutForgetting` keeps the frozen teacher, captures the
layers it aligns and computes the penalty; it is what the thin
:class:`~cl_spoof.strategies.methods.dfwf.plugin.DFWFPlugin` calls, in the way
Avalanche's ``LwFPlugin`` calls ``LearningWithoutForgetting``. No cl-spoof data,
model or workflow code is imported here: the regulariser works on any
classifier in anyone's Avalanche script. The teacher side is always detached.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from avalanche.models import avalanche_forward
from torch import nn
from torch.utils.hooks import RemovableHandle

from cl_spoof.errors import ConfigError

__all__ = ["DISTANCES", "HEAD_INPUT", "DetectingFakeWithoutForgetting", "kd_loss", "psa_loss",
           "resolve_layers", "unwrap_model"]

Distance = Literal["cosine", "l2"]

#: Embedding distances accepted by :func:`psa_loss`.
DISTANCES: tuple[str, ...] = ("cosine", "l2")

#: Name under which the default aligned features (the input of the model's last
#: ``nn.Linear``, i.e. what its classifier head sees) are captured.
HEAD_INPUT = "<input of the last nn.Linear>"


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Distillation loss ``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, batch mean.

    Both inputs are logits ``(B, C)``. The KL divergence of the temperature-softened
    distributions is multiplied by ``T²`` (Hinton et al., 2015): softening divides the
    gradients by about ``T²``, so the scaling keeps the term's size comparable across
    temperatures and against the cross-entropy. 0 when the logits are equal (up to a
    constant per row), positive otherwise; 0 for an empty batch. Gradients flow to the
    student only.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            "student and teacher logits must both have shape (B, C); got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum()  # exact 0, still part of the graph
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (temperature**2)


def psa_loss(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    is_bonafide: torch.Tensor,
    distance: Distance = "cosine",
) -> torch.Tensor:
    """Positive sample alignment: mean distance of bona fide embeddings to the teacher's.

    ``student_emb`` and ``teacher_emb`` have the same shape ``(B, ...)``; each sample is
    flattened, so intermediate feature maps ``(B, C, T)`` work as well as utterance
    embeddings. Only the rows where ``is_bonafide`` (a bool tensor ``(B,)``) is true count.
    ``distance="cosine"``: mean of ``1 - cos(student, teacher)`` (in [0, 2], scale-free);
    ``"l2"``: mean over samples of the squared Euclidean distance (grows with the
    flattened size). A batch without bona fide gives an exact 0 that is still connected
    to the student's graph (``backward`` works, the gradient is 0, never NaN).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {distance!r}")
    if student_emb.shape != teacher_emb.shape or student_emb.dim() < 1:
        raise ValueError(
            "student and teacher embeddings must have the same shape (B, ...); got "
            f"{tuple(student_emb.shape)} and {tuple(teacher_emb.shape)}"
        )
    mask = is_bonafide.to(device=student_emb.device, dtype=torch.bool).reshape(-1)
    if mask.shape[0] != student_emb.shape[0]:
        raise ValueError(
            f"is_bonafide has {mask.shape[0]} entries for a batch of {student_emb.shape[0]}"
        )
    student = student_emb.reshape(student_emb.shape[0], -1)[mask]
    teacher = teacher_emb.detach().reshape(teacher_emb.shape[0], -1)[mask]
    if student.shape[0] == 0:
        # Sum of an empty selection: exactly 0, part of the graph, gradient 0 everywhere.
        return student.sum()
    if distance == "cosine":
        cos = F.cosine_similarity(student, teacher, dim=1, eps=1e-8)
        return (1.0 - cos).clamp_min(0.0).mean()  # rounding can give 1 - cos = -1e-7
    return (student - teacher).pow(2).sum(dim=1).mean()


# ------------------------------------------------------------------ layers


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DataParallel`` / ``DistributedDataParallel`` wrappers."""
    while isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def _last_linear(model: nn.Module) -> nn.Module:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ConfigError(f"DFWFPlugin(layers=None) aligns the input of the model's last "
                          f"nn.Linear, but {type(model).__name__} has none; name the layers "
                          "to align with layers=[...]")
    return last


def resolve_layers(model: nn.Module, names: Sequence[str] | None,
                   argument: str = "DFWFPlugin(layers=...)") -> dict[str, nn.Module]:
    """Map layer names to submodules of (unwrapped) ``model``.

    ``names=None`` means the input of the model's last ``nn.Linear`` (key
    :data:`HEAD_INPUT`). An unknown name raises :class:`ConfigError` starting with
    ``argument`` (the caller's own name for the setting) and listing close matches.
    """
    model = unwrap_model(model)
    if names is None:
        return {HEAD_INPUT: _last_linear(model)}
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
                f"{argument}: {type(model).__name__} has no layer {name!r}{hint} "
                f"(its layers include: {shown})"
            ) from None
    return found


class _Capture:
    """Latest features of each hooked layer, per device (DataParallel runs one replica each).

    Named layers contribute their output (the first element of a tuple output, e.g.
    ``nn.GRU``'s); :data:`HEAD_INPUT` contributes the input of the last ``nn.Linear``.
    """

    def __init__(self) -> None:
        self.outputs: dict[str, dict[torch.device, torch.Tensor]] = {}

    def _store(self, name: str, value: Any) -> None:
        if isinstance(value, tuple | list):
            value = value[0]
        self.outputs.setdefault(name, {})[value.device] = value

    def attach(self, layers: dict[str, nn.Module]) -> list[RemovableHandle]:
        """Hook every layer (closures, never bound methods: ``copy.deepcopy`` of the
        model must not drag this object along); returns the handles to remove them."""
        handles = []
        for name, module in layers.items():
            if name == HEAD_INPUT:
                def pre(module: nn.Module, inputs: Any, name: str = name) -> None:
                    self._store(name, inputs)

                handles.append(module.register_forward_pre_hook(pre))
            else:
                def post(module: nn.Module, inputs: Any, output: Any, name: str = name) -> None:
                    self._store(name, output)

                handles.append(module.register_forward_hook(post))
        return handles

    def get(self, name: str) -> torch.Tensor:
        """The layer's features of the last forward (replica chunks joined in device order)."""
        per_device = self.outputs.get(name)
        if not per_device:
            raise ConfigError(
                f"DFWFPlugin(layers=...): layer {name!r} did not run during the model's "
                "forward; choose a layer on the path from input to logits"
            )
        if len(per_device) == 1:
            return next(iter(per_device.values()))
        ordered = sorted(per_device.items(), key=lambda kv: (kv[0].type, kv[0].index or 0))
        first = ordered[0][1]
        return torch.cat([t.to(first.device) for _, t in ordered], dim=0)

    def clear(self) -> None:
        """Drop stored features (frees the activations they keep alive)."""
        self.outputs.clear()


def remove_hooks(handles: list[RemovableHandle]) -> None:
    """Remove forward hooks and empty ``handles``."""
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


# ------------------------------------------------------------------ the regulariser


TeacherOutput = tuple[torch.Tensor, dict[str, torch.Tensor]]


class DetectingFakeWithoutForgetting:
    """DFWF's regulariser: a frozen copy of the previous model and the loss against it.

    Use (what :class:`~cl_spoof.strategies.methods.dfwf.plugin.DFWFPlugin` does):
    :meth:`pre_adapt` at the start of an experience, :meth:`teacher_forward` and
    :meth:`capture_student` around the student's forward, :meth:`penalty` for the
    extra loss, :meth:`post_adapt` after the experience (the teacher becomes a copy
    of the model just trained). Before the first :meth:`post_adapt` there is no
    teacher and the penalty is not computed.
    """

    def __init__(self, kd_weight: float = 1.0, temperature: float = 2.0,
                 psa_weight: float = 1.0, distance: str = "cosine",
                 layers: Sequence[str] | None = None, bonafide_class: int = 1) -> None:
        """Validate the settings; :class:`ConfigError` names the offending argument."""
        if kd_weight < 0 or psa_weight < 0:
            raise ConfigError(f"DFWFPlugin(kd_weight={kd_weight}, psa_weight={psa_weight}): "
                              "the weights must not be negative")
        if temperature <= 0:
            raise ConfigError(f"DFWFPlugin(temperature={temperature}): must be positive")
        if distance not in DISTANCES:
            raise ConfigError(f"DFWFPlugin(distance={distance!r}): must be one of "
                              f"{', '.join(DISTANCES)}")
        if layers is not None:
            layers = tuple(layers)
            if not layers:
                raise ConfigError("DFWFPlugin(layers=[]): name at least one layer, or pass "
                                  "layers=None for the input of the model's last nn.Linear")
        if isinstance(bonafide_class, bool) or not isinstance(bonafide_class, int) \
                or bonafide_class < 0:
            raise ConfigError(f"DFWFPlugin(bonafide_class={bonafide_class!r}): must be a "
                              "class index (a non-negative integer)")
        self.kd_weight = float(kd_weight)
        self.temperature = float(temperature)
        self.psa_weight = float(psa_weight)
        self.distance: Distance = cast(Distance, distance)
        self.layers: tuple[str, ...] | None = layers
        self.bonafide_class = bonafide_class
        self.teacher: nn.Module | None = None
        self._pending: dict[str, torch.Tensor] | None = None  # loaded, not yet built
        self._teacher_layers: dict[str, nn.Module] = {}
        self._student_layers: dict[str, nn.Module] = {}

    @property
    def active(self) -> bool:
        """Whether a teacher exists and some term has a positive weight."""
        return self.teacher is not None and (self.kd_weight > 0 or self.psa_weight > 0)

    @property
    def uses_psa(self) -> bool:
        """Whether the alignment term is computed (teacher present, positive weight)."""
        return self.teacher is not None and self.psa_weight > 0

    def pre_adapt(self, model: nn.Module, device: torch.device | str) -> None:
        """Resolve the aligned layers on ``model`` (fail fast on a bad name); build a
        teacher loaded by :meth:`load_state_dict`; move the teacher to ``device``."""
        self._student_layers = resolve_layers(model, self.layers)
        if self._pending is not None:
            teacher = copy.deepcopy(unwrap_model(model))
            teacher.load_state_dict(self._pending)
            self._set_teacher(teacher)
        if self.teacher is not None:
            self.teacher.to(device)

    def teacher_forward(self, x: torch.Tensor, task_labels: Any = None) -> TeacherOutput:
        """Teacher logits and aligned features from one no-grad forward
        (through ``avalanche_forward``, so multi-task models work)."""
        assert self.teacher is not None, "teacher_forward needs a teacher (after post_adapt)"
        capture = _Capture()
        hooked = self.uses_psa
        handles = capture.attach(self._teacher_layers) if hooked else []
        try:
            with torch.no_grad():
                logits = avalanche_forward(self.teacher, x, task_labels)
        finally:
            remove_hooks(handles)
        feats = {n: capture.get(n) for n in self._teacher_layers} if hooked else {}
        return logits, feats

    def capture_student(self, capture: _Capture) -> list[RemovableHandle]:
        """Hook the student's aligned layers into ``capture`` (remove after its forward)."""
        return capture.attach(self._student_layers) if self.uses_psa else []

    def penalty(self, student_logits: torch.Tensor, targets: torch.Tensor,
                teacher: TeacherOutput, student_feats: Callable[[str], torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(kd_weight * L_kd + psa_weight * L_psa, L_kd, L_psa)``; a term with weight 0
        is ``None`` and not computed. ``student_feats(name)`` gives the student's
        features of an aligned layer from the same forward as ``student_logits``."""
        teacher_logits, teacher_feats = teacher
        extra = student_logits.new_zeros(())
        kd = psa = None
        if self.kd_weight > 0:
            kd = kd_loss(student_logits, teacher_logits, self.temperature)
            extra = extra + self.kd_weight * kd
        if self.uses_psa:
            is_bona = targets == self.bonafide_class
            terms = [psa_loss(student_feats(name), teacher_feats[name], is_bona, self.distance)
                     for name in self._teacher_layers]
            psa = torch.stack(terms).mean()
            extra = extra + self.psa_weight * psa
        return extra, kd, psa

    def post_adapt(self, model: nn.Module) -> None:
        """Make the teacher a frozen copy of ``model`` (call with no hooks attached)."""
        self.teacher = None  # free the old teacher before copying
        self._pending = None
        self._set_teacher(copy.deepcopy(unwrap_model(model)))

    def state_dict(self) -> dict[str, Any]:
        """``{"teacher": state dict or None}``; loads back with :meth:`load_state_dict`."""
        if self.teacher is not None:
            return {"teacher": self.teacher.state_dict()}
        return {"teacher": self._pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. The teacher is rebuilt from a copy of the model at
        the next :meth:`pre_adapt` (the state holds weights, not the architecture)."""
        if not isinstance(state, dict) or "teacher" not in state:
            raise ConfigError("DFWFPlugin.load_state_dict: expected the dict returned by "
                              "DFWFPlugin.state_dict() (a 'teacher' entry)")
        self.teacher = None
        self._teacher_layers = {}
        self._pending = state["teacher"]

    def _set_teacher(self, teacher: nn.Module) -> None:
        self.teacher = _freeze(teacher)
        self._teacher_layers = resolve_layers(self.teacher, self.layers)
