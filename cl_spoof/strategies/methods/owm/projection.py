"""Orthogonal weight modification for fake-audio detection: RAWM and RWM, the math.

Both methods come from orthogonal weight modification (OWM, Zeng et al., Nature
Machine Intelligence 2019). For a layer ``y = W x`` that has seen inputs ``x``
(rows of ``A``), OWM's projector ``P = I - Aᵀ(A Aᵀ + α I)⁻¹ A`` maps an update
of ``W`` onto the directions orthogonal to every old input, so ``W x_old``
does not change; ``Q = I - P`` maps onto the old input space.

- **RAWM** (Zhang et al., ICML 2023, "Do you remember? Overcoming catastrophic
  forgetting for fake audio detection"): the update goes through ``P + β Q``,
  with ``β`` set by the batch's ratio of genuine to fake utterances, because
  genuine speech looks alike across datasets and may move inside the old space.
- **RWM** (Zhang et al., AAAI 2024, "What to remember: self-adaptive continual
  learning for audio deepfake detection"): the same ``P + β Q`` with ``β = tan θ``,
  a radian tilted towards ``Q`` by the samples of the *compact* class (genuine
  speech, whose features vary little across tasks) and towards ``P`` by those of
  the *spread-out* class (fakes).

The formulas below follow OWM and the two papers (RWM: arXiv:2312.09651), with
these choices (config keys in brackets):

- ``P`` is computed in closed form from the mean outer product of all inputs
  seen, ``R̄ = mean(x xᵀ)``: ``P = (I + R̄/α')⁻¹`` — exactly what OWM's recursive
  (RLS) update ``P ← P - P x xᵀ P / (α_RLS + xᵀ P x)`` gives after the same ``n``
  inputs with ``α_RLS = n α'`` (a test checks it), in one eigendecomposition per
  layer and experience instead of one ``d × d`` update per input. ``α' = α · tr(R̄)/d``
  makes α relative to the mean input energy [``owm_alpha``]; ``Q = I - P``.
- What is projected is the optimizer's update by default, or the gradient as in
  the papers [``owm_target``] (see :mod:`cl_spoof.strategies.methods.owm.plugin`).
- The input space is that of every *finished* experience (the first included):
  after each experience one no-gradient pass over its training set (evaluation
  crops, BatchNorm in evaluation mode) adds its inputs; during an experience P
  is fixed.
- RAWM's ``β`` is the batch's genuine share (``share``, in [0, 1]: P alone for an
  all-fake batch, the plain update for an all-genuine one) or the public code's
  ``(n_genuine + 1)/(n_fake + 1)`` (``ratio``) [``rawm_beta``]; RWM's radian uses a
  numerically stable softmax; both are clamped to ``[0, β_max]`` [``owm_beta_max``].
- The paper's "regularisation constraint" has no loss term in any public code;
  here the ridge α is the only softening of the projection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

__all__ = ["InputSpace", "modify", "projector", "rawm_beta", "rwm_beta"]


def projector(corr: torch.Tensor, alpha: float) -> torch.Tensor:
    """OWM's ``P = (I + R̄/α')⁻¹`` for the mean input outer product ``R̄`` (d × d).

    ``α' = alpha · tr(R̄)/d``. Computed in float64 on the CPU (deterministic), returned
    as float32. A zero ``R̄`` (no inputs) gives the identity.
    """
    r = corr.detach().to("cpu", torch.float64)
    r = 0.5 * (r + r.T)
    lam, vec = torch.linalg.eigh(r)
    lam = lam.clamp_min(0.0)
    ridge = alpha * float(lam.mean())
    if ridge <= 0:
        return torch.eye(r.shape[0], dtype=torch.float32)
    scale = ridge / (ridge + lam)
    return ((vec * scale) @ vec.T).to(torch.float32)


def modify(delta: torch.Tensor, p: torch.Tensor, beta: float) -> torch.Tensor:
    """``delta (P + β Q)`` with ``Q = I - P``, i.e. ``β delta + (1 - β) delta P``.

    ``delta`` is an ``out × d`` update (or gradient) of ``[W b]``; ``P`` acts on the
    input side, so the result changes ``W x`` for an old input ``x`` by ``β`` times
    what ``delta`` would have (up to the ridge).
    """
    moved = delta @ p.to(delta.device, delta.dtype)
    if beta == 0.0:
        return moved
    return beta * delta + (1.0 - beta) * moved


def rawm_beta(targets: torch.Tensor, bonafide_class: int, rule: str, beta_max: float) -> float:
    """RAWM's weight of the old input space for a batch with labels ``targets``.

    ``"share"``: genuine share of the batch; ``"ratio"``: ``(n_genuine + 1)/(n_fake + 1)``.
    Clamped to ``[0, beta_max]``; an empty batch gives 0.
    """
    n = int(targets.numel())
    genuine = int((targets == bonafide_class).sum())
    if rule == "share":
        beta = genuine / n if n else 0.0
    elif rule == "ratio":
        beta = (genuine + 1) / (n - genuine + 1)
    else:
        raise ValueError(f"rule must be 'share' or 'ratio'; got {rule!r}")
    return min(max(beta, 0.0), beta_max)


def rwm_beta(true_logits: torch.Tensor, signs: torch.Tensor, beta_max: float) -> float:
    """RWM's ``β = tan θ`` from the logit of each sample's true class.

    Each sample gets ``θ_i = arcsin(w_i)`` with ``w = softmax(true_logits)`` over the
    batch (weights summing to 1, larger for samples the model is sure of); the
    radian ``θ = π/4 + ½ Σ s_i θ_i`` starts at 45° (``β = 1``: the plain update) and
    turns towards the old space (``β > 1``) for samples of the compact class
    (``s_i = +1``) and towards the orthogonal complement (``β < 1``) for the others
    (``s_i = -1``). ``θ`` is clamped to ``[0, π/2)`` and ``β`` to ``[0, beta_max]``.
    """
    if true_logits.numel() == 0:
        return 1.0
    w = torch.softmax(true_logits.detach().double(), dim=0)
    theta = torch.asin(w.clamp(0.0, 1.0))
    radian = math.pi / 4 + 0.5 * float((signs.double().to(theta.device) * theta).sum())
    radian = min(max(radian, 0.0), math.pi / 2 - 1e-6)
    return min(math.tan(radian), beta_max)


class InputSpace:
    """The input space of every finished experience, per layer: ``R̄`` and a row count.

    ``add(sums, counts)`` merges one experience's sums of ``x xᵀ`` (float64) into the
    running means. The canonical state is float32 (what a checkpoint holds), and
    every projector is computed from it, so a resumed run projects exactly as the
    uninterrupted one.
    """

    def __init__(self) -> None:
        self.corr: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}

    def __bool__(self) -> bool:
        return any(n > 0 for n in self.count.values())

    def add(self, sums: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> None:
        """Fold in one experience's row sums ``Σ x xᵀ`` and row counts."""
        for key, total in sums.items():
            n_new = int(counts[key])
            if n_new == 0:
                continue
            n_old = self.count.get(key, 0)
            old = self.corr.get(key)
            merged = total.detach().to("cpu", torch.float64)
            if old is not None and n_old:
                merged = merged + old.to(torch.float64) * n_old
            self.corr[key] = (merged / (n_old + n_new)).to(torch.float32)
            self.count[key] = n_old + n_new

    def projectors(self, alpha: float) -> dict[str, torch.Tensor]:
        """``P`` of every layer with stored inputs."""
        return {k: projector(c, alpha) for k, c in self.corr.items() if self.count.get(k, 0)}

    def state_dict(self) -> dict[str, dict]:
        """Tensors and ints only (checkpoints load with ``weights_only=True``)."""
        return {"corr": {k: v.clone() for k, v in self.corr.items()},
                "count": dict(self.count)}

    def load_state_dict(self, state: Mapping[str, Mapping]) -> None:
        """Restore :meth:`state_dict`."""
        self.corr = {k: v.detach().to("cpu", torch.float32).clone()
                     for k, v in state.get("corr", {}).items()}
        self.count = {k: int(v) for k, v in state.get("count", {}).items()}
