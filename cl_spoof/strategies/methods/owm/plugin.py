"""``RAWMPlugin`` and ``RWMPlugin``: orthogonal weight modification for fake-audio detection.

Drop either into any Avalanche strategy::

    strategy = Naive(model=model, optimizer=opt, criterion=CrossEntropyLoss(),
                     plugins=[RAWMPlugin(bonafide_class=1)])

From the second experience on, every step's change of each constrained layer
``[W b]`` goes through ``P + β Q`` (:mod:`cl_spoof.strategies.methods.owm.projection`): ``P``
keeps ``W x`` of the inputs of all finished experiences, ``Q = I - P`` moves
inside their space, ``β`` comes from the batch (RAWM: its genuine share; RWM:
a radian from its logits). After each experience one no-gradient pass over its
training set adds its inputs to the stored input space.

**What is projected** (``target``): ``"update"`` (default) projects the change
the optimizer step made, ``"gradient"`` the gradient before the step, as the
papers (which assume SGD) do. cl-spoof trains with Adam, which rescales every
coordinate of the gradient separately, so a projected gradient does not give a
projected update; projecting the update keeps the defining property (old
inputs' layer outputs unchanged, up to the ridge) with any optimizer. For plain
SGD without momentum the two are the same.

**Cost**: per step and layer one ``out × d × d`` product (and a copy of the
layer's weights for ``"update"``); per experience one forward pass over its
training data and one ``d × d`` eigendecomposition per layer. State: one
``d × d`` float32 matrix per layer (``d`` = inputs of the layer, ``C·K`` for a
convolution, +1 with a bias).

**torchrun**: the input statistics are summed over ranks (each rank passes over
its shard), and ``β`` is computed from the whole global mini-batch (labels and
logits gathered from every rank), so every rank applies the same projection to
the same averaged gradient. Pass the run's :class:`~cl_spoof.infra.context.RunContext`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import avalanche_forward
from torch import nn

from cl_spoof.strategies.extra_pass import ModesKept, shard_loader
from cl_spoof.strategies.layers import InputRows, WeightLayer, weight_layers
from cl_spoof.strategies.methods.owm.projection import InputSpace, modify, rawm_beta, rwm_beta
from cl_spoof.strategies.state import plugin_state

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["RAWM_STATE", "RWM_STATE", "RAWMPlugin", "RWMPlugin"]

logger = logging.getLogger(__name__)

TARGETS = ("update", "gradient")


class _ProjectionPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """What RAWM and RWM share: the input space, the pass that fills it, the projection."""

    name = "projection"

    def __init__(self, layers: Sequence[str] = ("*",), alpha: float = 1e-3,
                 target: str = "update", beta_max: float = 10.0, bonafide_class: int = 1,
                 ctx: RunContext | None = None) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be positive; got {alpha}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
        if beta_max < 0:
            raise ValueError(f"beta_max must not be negative; got {beta_max}")
        self.patterns = tuple(layers)
        self.alpha = alpha
        self.target = target
        self.beta_max = beta_max
        self.bonafide_class = bonafide_class
        self.ctx = ctx
        self.space = InputSpace()
        self.history: list[dict[str, Any]] = []
        self._layers: list[WeightLayer] = []
        self._p: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._betas: list[float] = []
        self._beta = 1.0

    # ------------------------------------------------------------------ what subclasses set

    def batch_beta(self, strategy: Any) -> float:
        """The weight ``β`` of the old input space for the current (global) mini-batch."""
        raise NotImplementedError

    def _extra_pass_hooks(self, model: nn.Module) -> list[Any]:
        return []

    def _extra_pass_batch(self, targets: torch.Tensor) -> None:
        pass

    def _extra_pass_end(self) -> None:
        pass

    # ------------------------------------------------------------------ callbacks

    @property
    def active(self) -> bool:
        """Whether updates are projected (an input space is stored)."""
        return bool(self._p)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Resolve the layers (fail fast on a bad pattern); compute this experience's ``P``."""
        self._layers = weight_layers(strategy.model, self.patterns,
                                     f"{type(self).__name__}(layers=...)")
        device = strategy.device
        self._p = {k: p.to(device) for k, p in self.space.projectors(self.alpha).items()}
        self._betas = []

    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        """Gradient target: project the gradients; update target: remember the weights."""
        if not self.active:
            return
        beta = self.batch_beta(strategy)
        self._betas.append(beta)
        self._beta = beta
        if self.target == "gradient":
            for layer in self._layers:
                grads = [p.grad for p in layer.parameters()]
                if layer.key not in self._p or any(g is None for g in grads):
                    continue
                g_w, g_b = cast(torch.Tensor, grads[0]), grads[1] if len(grads) > 1 else None
                w, b = layer.split(modify(layer.matrix(g_w, g_b), self._p[layer.key], beta))
                g_w.copy_(w)
                if b is not None and g_b is not None:
                    g_b.copy_(b)
        else:
            self._before = {}
            for layer in self._layers:
                params = layer.parameters()
                if layer.key in self._p and all(p.requires_grad for p in params):
                    self._before[layer.key] = layer.matrix(
                        params[0].detach(), params[1].detach() if len(params) > 1 else None
                    ).clone()

    @torch.no_grad()
    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        """Update target: replace the step's change ``Δ`` of each layer by ``Δ (P + β Q)``."""
        if not self.active or self.target != "update":
            return
        for layer in self._layers:
            before = self._before.get(layer.key)
            if before is None:
                continue
            params = layer.parameters()
            now = layer.matrix(params[0], params[1] if len(params) > 1 else None)
            w, b = layer.split(before + modify(now - before, self._p[layer.key], self._beta))
            params[0].copy_(w)
            if b is not None:
                params[1].copy_(b)
        self._before = {}

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Record the experience, then add its inputs to the stored input space."""
        exp = strategy.experience
        self.history.append({
            "experience": getattr(exp, "current_experience", len(self.history)),
            "active": self.active,
            "mean_beta": sum(self._betas) / len(self._betas) if self._betas else None,
        })
        self._collect(strategy)
        self._p = {}

    # ------------------------------------------------------------------ the input pass

    @torch.no_grad()
    def _collect(self, strategy: Any) -> None:
        """One pass over the experience's training data: ``Σ x xᵀ`` per layer, all ranks.

        Layers none of whose parameters learn (a frozen SSL encoder, say) are left out:
        they are never updated, and their input spaces could be large (d² floats each).
        """
        model = strategy.model
        device = strategy.device
        layers = [layer for layer in weight_layers(model, self.patterns,
                                                   f"{type(self).__name__}(layers=...)")
                  if any(p.requires_grad for p in layer.parameters())]
        sums = {layer.key: torch.zeros(layer.dim, layer.dim, dtype=torch.float64, device=device)
                for layer in layers}
        counts = torch.zeros(len(layers), dtype=torch.float64, device=device)
        loader = shard_loader(strategy.experience.dataset, strategy.eval_mb_size, self.ctx)
        extra = self._extra_pass_hooks(model)
        try:
            with ModesKept(model), InputRows(layers) as rows:
                for batch in loader:
                    x = batch[0].to(device)
                    t = batch[2].to(device) if len(batch) > 2 else None
                    avalanche_forward(model, x, t)
                    for i, layer in enumerate(layers):
                        r = rows.latest.pop(layer.key, None)
                        if r is None:
                            continue
                        r = r.double()
                        sums[layer.key] += r.T @ r
                        counts[i] += r.shape[0]
                    self._extra_pass_batch(batch[1].to(device))
        finally:
            for handle in extra:
                handle.remove()
        if self.ctx is not None:
            for total in sums.values():
                self.ctx.all_reduce_sum(total)
            self.ctx.all_reduce_sum(counts)
        self.space.add(sums, {layer.key: int(counts[i]) for i, layer in enumerate(layers)})
        self._extra_pass_end()

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """The stored input space (tensors and ints)."""
        return {"space": self.space.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.space.load_state_dict(state.get("space", {}))

    # ------------------------------------------------------------------ helpers

    def _global(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.ctx is None else self.ctx.all_gather_cat(tensor)


class RAWMPlugin(_ProjectionPlugin):
    """Regularized Adaptive Weight Modification (Zhang et al., ICML 2023).

    :param layers: fnmatch patterns of module names whose weights are constrained
        (``nn.Linear``, ``nn.Conv1d``, ``nn.GRU`` input weights; ``"*"``: all of them).
    :param alpha: ridge of ``P``, relative to the mean input energy (smaller: stricter).
    :param target: ``"update"`` (the optimizer's step) or ``"gradient"``.
    :param beta: ``"share"`` (genuine share of the batch) or ``"ratio"``
        (``(n_genuine + 1)/(n_fake + 1)``), clamped to ``[0, beta_max]``.
    :param bonafide_class: the target index of genuine speech.
    :param ctx: the run's context under torchrun (``None``: one process).
    """

    name = "rawm"

    def __init__(self, layers: Sequence[str] = ("*",), alpha: float = 1e-3,
                 target: str = "update", beta: str = "share", beta_max: float = 10.0,
                 bonafide_class: int = 1, ctx: RunContext | None = None) -> None:
        super().__init__(layers, alpha, target, beta_max, bonafide_class, ctx)
        if beta not in ("share", "ratio"):
            raise ValueError(f"beta must be 'share' or 'ratio'; got {beta!r}")
        self.beta_rule = beta

    def batch_beta(self, strategy: Any) -> float:
        targets = self._global(strategy.mb_y.detach())
        return rawm_beta(targets, self.bonafide_class, self.beta_rule, self.beta_max)


class RWMPlugin(_ProjectionPlugin):
    """Radian Weight Modification (Zhang et al., AAAI 2024).

    Parameters as :class:`RAWMPlugin`, plus ``compact_class``: which class's samples
    turn the update towards the old input space — ``"bonafide"`` (default: the
    paper's finding that genuine speech is the compact class), ``"spoof"``, or
    ``"auto"``: after each experience, the class whose utterance embeddings (the
    input of the model's last ``nn.Linear``) have the smaller in-class cosine
    distance ``1 - ‖mean of unit embeddings‖²`` in that experience.

    ``β > 1`` *amplifies* the part of the update inside the old input space (more
    than plain fine-tuning moves it). Where every batch is dominated by the compact
    class — e.g. a bona fide pool shared by all experiences and a few dozen spoofs per
    attack — nearly every step gets ``β ≈ 3`` (``benchmarks/studies/projection_beta.py``
    measures it on a run); ``beta_max=1`` caps RWM at the plain update.
    """

    name = "rwm"

    def __init__(self, layers: Sequence[str] = ("*",), alpha: float = 1e-3,
                 target: str = "update", compact_class: str = "bonafide",
                 beta_max: float = 10.0, bonafide_class: int = 1,
                 ctx: RunContext | None = None) -> None:
        super().__init__(layers, alpha, target, beta_max, bonafide_class, ctx)
        if compact_class not in ("bonafide", "spoof", "auto"):
            raise ValueError(f"compact_class must be 'bonafide', 'spoof' or 'auto'; "
                             f"got {compact_class!r}")
        self.compact_class = compact_class
        # +1 for the compact class; measured after each experience with "auto".
        self.compact_is_bonafide = compact_class != "spoof"
        self.distances: list[dict[str, float]] = []
        self._emb_sum: dict[int, torch.Tensor] = {}
        self._emb_count: dict[int, int] = {}
        self._emb: torch.Tensor | None = None

    def signs(self, targets: torch.Tensor) -> torch.Tensor:
        """``+1`` for samples of the compact class, ``-1`` for the others."""
        bona = targets == self.bonafide_class
        compact = bona if self.compact_is_bonafide else ~bona
        return compact.double() * 2.0 - 1.0

    def batch_beta(self, strategy: Any) -> float:
        logits = strategy.mb_output.detach().float()
        targets = strategy.mb_y.detach()
        true = logits.gather(1, targets.view(-1, 1)).squeeze(1)
        true, targets = self._global(true), self._global(targets)
        return rwm_beta(true, self.signs(targets), self.beta_max)

    # ---- "auto": in-class cosine distance of the embeddings, in the input pass

    def _extra_pass_hooks(self, model: nn.Module) -> list[Any]:
        if self.compact_class != "auto":
            return []
        head = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not head:
            raise ValueError("RWMPlugin(compact_class='auto') needs a model whose last "
                             "nn.Linear receives the utterance embedding")
        self._emb_sum, self._emb_count = {}, {}

        def hook(module: nn.Module, inputs: tuple) -> None:
            self._emb = inputs[0].detach().reshape(inputs[0].shape[0], -1)

        return [head[-1].register_forward_pre_hook(hook)]

    def _extra_pass_batch(self, targets: torch.Tensor) -> None:
        if self.compact_class != "auto" or self._emb is None:
            return
        unit = torch.nn.functional.normalize(self._emb.double(), dim=1)
        for c in (0, 1):
            rows = unit[targets == c]
            total = self._emb_sum.get(c)
            part = rows.sum(dim=0)
            self._emb_sum[c] = part if total is None else total + part
            self._emb_count[c] = self._emb_count.get(c, 0) + int(rows.shape[0])
        self._emb = None

    def _extra_pass_end(self) -> None:
        if self.compact_class != "auto" or not self._emb_sum:
            return
        distance: dict[str, float] = {}
        for c, total in self._emb_sum.items():
            count = torch.tensor([float(self._emb_count[c])], dtype=torch.float64,
                                 device=total.device)
            if self.ctx is not None:
                self.ctx.all_reduce_sum(total)
                self.ctx.all_reduce_sum(count)
            n = float(count)
            name = "bonafide" if c == self.bonafide_class else "spoof"
            distance[name] = 1.0 - float((total / n).pow(2).sum()) if n else math.nan
        self.distances.append(distance)
        if all(math.isfinite(distance.get(k, math.nan)) for k in ("bonafide", "spoof")):
            self.compact_is_bonafide = distance["bonafide"] <= distance["spoof"]
        logger.info("RWM in-class cosine distances %s: compact class %s", distance,
                    "bonafide" if self.compact_is_bonafide else "spoof")

    def state_dict(self) -> dict[str, Any]:
        """The input space and which class is compact."""
        return {**super().state_dict(), "compact_is_bonafide": bool(self.compact_is_bonafide)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        super().load_state_dict(state)
        if "compact_is_bonafide" in state:
            self.compact_is_bonafide = bool(state["compact_is_bonafide"])


#: Each plugin's input space (and RWM's compact class) in checkpoints.
RAWM_STATE = plugin_state(RAWMPlugin, "rawm")
RWM_STATE = plugin_state(RWMPlugin, "rwm")
