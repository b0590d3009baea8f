"""``RegOPlugin``: region-based optimization (RegO) as an Avalanche plugin.

Drop it into any Avalanche strategy::

    strategy = Naive(model=model, optimizer=opt, criterion=CrossEntropyLoss(),
                     plugins=[RegOPlugin(bonafide_class=1)])

From the second experience on, each step's gradient of every selected
parameter is rewritten entry by entry by region (:mod:`~cl_spoof.strategies.methods.rego.regions`):
free where no finished experience found the entry important, parallel to a
reference gradient where only genuine speech did, orthogonal to it where only
fakes did, a mix by the batch's class shares where both did. After each
experience one extra pass over its training data (evaluation mode, one forward
and two backward passes per batch) measures the genuine and fake Fisher
information and stores which entries are important, as bits.

**Cost**: per step a few element-wise operations and one dot product per
tensor (and, for the ``previous_step`` reference, one copy of the gradients);
per experience the extra pass. **State**: one float copy of the selected
parameters (the reference gradient) plus ``(experiences + 2)`` bits per entry.

**torchrun**: the Fisher sums are summed over ranks (each rank passes over its
shard); the batch's class shares are those of the global mini-batch; so every
rank rewrites the same averaged gradient the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.models import avalanche_forward

from cl_spoof.strategies.extra_pass import ModesKept, shard_loader
from cl_spoof.strategies.layers import select
from cl_spoof.strategies.methods.rego.regions import (
    combine,
    important,
    pack,
    region_codes,
    unpack,
)
from cl_spoof.strategies.state import plugin_state

if TYPE_CHECKING:
    from cl_spoof.infra.context import RunContext

__all__ = ["STATE", "RegOPlugin"]

REFERENCES = ("previous_step", "old_task")


class RegOPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Region-based optimization (Chen et al., AAAI 2025).

    :param layers: fnmatch patterns of parameter (or module) names it acts on (``"*"``: all).
    :param quantile: an entry is important for a class when its Fisher information is
        above this quantile of its tensor (0.75: the top quarter).
    :param release: Ebbinghaus threshold; entries whose weighted importance over the
        finished experiences is at most this become free again.
    :param reference: ``"previous_step"`` (the last step's final gradient, as the public
        code) or ``"old_task"`` (the mean gradient of the last finished experience).
    :param bonafide_class: the target index of genuine speech.
    :param ctx: the run's context under torchrun (``None``: one process).
    """

    def __init__(self, layers: Sequence[str] = ("*",), quantile: float = 0.75,
                 release: float = 0.1, reference: str = "previous_step",
                 bonafide_class: int = 1, ctx: RunContext | None = None) -> None:
        super().__init__()
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0, 1); got {quantile}")
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}; got {reference!r}")
        self.patterns = tuple(layers)
        self.quantile = quantile
        self.release = release
        self.reference_kind = reference
        self.bonafide_class = bonafide_class
        self.ctx = ctx
        self.tasks = 0
        self.planes: dict[str, list[torch.Tensor]] = {}  # per tensor, per experience: bits
        self.real_any: dict[str, torch.Tensor] = {}
        self.fake_any: dict[str, torch.Tensor] = {}
        self.reference: dict[str, torch.Tensor] = {}
        self.history: list[dict[str, Any]] = []
        self._names: list[str] = []
        self._codes: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ callbacks

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Select the tensors; compute every entry's region for this experience."""
        model = strategy.model
        self._names = select([n for n, _ in model.named_parameters()], self.patterns,
                             "RegOPlugin(layers=...)")
        self._codes = {}
        self.reference = {k: v.to(strategy.device) for k, v in self.reference.items()}
        if self.tasks == 0:
            return
        params = dict(model.named_parameters())
        counts = [0, 0, 0, 0]
        for name in self._names:
            if name not in self.real_any:
                continue
            shape = params[name].shape
            planes = [unpack(p, shape) for p in self.planes[name]]
            code = region_codes(planes, unpack(self.real_any[name], shape),
                                unpack(self.fake_any[name], shape), self.release)
            self._codes[name] = code.to(strategy.device)
            for region in range(4):
                counts[region] += int((code == region).sum())
        self.history.append({"experience": self.tasks, "regions": dict(zip("ABCD", counts,
                                                                              strict=True))})

    @torch.no_grad()
    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        """Rewrite the gradients region by region; keep them as the next reference."""
        params = dict(strategy.model.named_parameters())
        if self._codes:
            targets = strategy.mb_y.detach()
            if self.ctx is not None:
                targets = self.ctx.all_gather_cat(targets)
            n = int(targets.numel())
            share = float((targets == self.bonafide_class).sum()) / n if n else 0.0
            for name, code in self._codes.items():
                grad = params[name].grad
                if grad is not None:
                    grad.copy_(combine(grad, self.reference.get(name), code, share))
        if self.reference_kind == "previous_step":
            for name in self._names:
                grad = params[name].grad
                if grad is not None:
                    self.reference[name] = grad.detach().clone()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Measure the genuine and fake Fisher information; store this experience's masks."""
        fisher, counts, mean_grad = self._fisher(strategy)
        params = dict(strategy.model.named_parameters())
        for name in self._names:
            shape = params[name].shape
            real = fisher[0].get(name)
            fake = fisher[1].get(name)
            real_mask = important(real, self.quantile) if real is not None and counts[0] \
                else torch.zeros(shape, dtype=torch.bool)
            fake_mask = important(fake, self.quantile) if fake is not None and counts[1] \
                else torch.zeros(shape, dtype=torch.bool)
            real_mask, fake_mask = real_mask.cpu(), fake_mask.cpu()
            self.planes.setdefault(name, []).append(pack(real_mask | fake_mask))
            old_real = unpack(self.real_any[name], shape) if name in self.real_any \
                else torch.zeros(shape, dtype=torch.bool)
            old_fake = unpack(self.fake_any[name], shape) if name in self.fake_any \
                else torch.zeros(shape, dtype=torch.bool)
            self.real_any[name] = pack(old_real | real_mask)
            self.fake_any[name] = pack(old_fake | fake_mask)
        if self.reference_kind == "old_task":
            self.reference = {k: v.to(torch.float32) for k, v in mean_grad.items()}
        self.tasks += 1
        self._codes = {}

    # ------------------------------------------------------------------ the Fisher pass

    def _fisher(self, strategy: Any) -> tuple[list[dict[str, torch.Tensor]], list[int],
                                              dict[str, torch.Tensor]]:
        """Per class (genuine, fake): ``Σ_b n_b g_b² / N`` over this rank's batches, all ranks.

        ``g_b`` is the gradient of the class's mean cross-entropy in batch ``b``. Also
        returns the class counts and the mean gradient of the whole experience.
        """
        model = strategy.model
        device = strategy.device
        chosen = set(self._names)
        named = {n: p for n, p in model.named_parameters() if n in chosen and p.requires_grad}
        names, params = list(named), list(named.values())
        sums = [{n: torch.zeros_like(p, dtype=torch.float64) for n, p in named.items()}
                for _ in range(2)]
        grad_sum = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in named.items()}
        counts = torch.zeros(2, dtype=torch.float64, device=device)
        loader = shard_loader(strategy.experience.dataset, strategy.train_mb_size, self.ctx)
        if not params:  # everything it acts on is frozen (train.trainable)
            return [{}, {}], [0, 0], {}
        with ModesKept(model):
            for batch in loader:
                x, y = batch[0].to(device), batch[1].to(device)
                t = batch[2].to(device) if len(batch) > 2 else None
                out = avalanche_forward(model, x, t)
                classes = (self.bonafide_class, 1 - self.bonafide_class)
                present = [(k, y == c) for k, c in enumerate(classes) if bool((y == c).any())]
                for j, (k, mask) in enumerate(present):
                    loss = F.cross_entropy(out[mask], y[mask])
                    grads = torch.autograd.grad(loss, params, retain_graph=j + 1 < len(present),
                                                allow_unused=True)
                    n_c = float(mask.sum())
                    counts[k] += n_c
                    for name, g in zip(names, grads, strict=True):
                        if g is not None:
                            g = g.detach().double()
                            sums[k][name] += n_c * g.pow(2)
                            grad_sum[name] += n_c * g
        if self.ctx is not None:
            for per_class in sums:
                for total in per_class.values():
                    self.ctx.all_reduce_sum(total)
            for total in grad_sum.values():
                self.ctx.all_reduce_sum(total)
            self.ctx.all_reduce_sum(counts)
        n = [int(c) for c in counts.tolist()]
        fisher = [{name: (s / n[k]).float() for name, s in sums[k].items()} if n[k] else {}
                  for k in range(2)]
        mean = {name: (g / max(sum(n), 1)).float().cpu() for name, g in grad_sum.items()}
        return fisher, n, mean

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Masks (bits), reference gradients, number of finished experiences."""
        return {"tasks": int(self.tasks),
                "planes": {k: [p.clone() for p in v] for k, v in self.planes.items()},
                "real_any": {k: v.clone() for k, v in self.real_any.items()},
                "fake_any": {k: v.clone() for k, v in self.fake_any.items()},
                "reference": {k: v.detach().cpu().clone() for k, v in self.reference.items()}}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu"
                        ) -> None:
        """Restore :meth:`state_dict` (reference gradients onto ``device``)."""
        self.tasks = int(state.get("tasks", 0))
        self.planes = {k: [p.cpu() for p in v] for k, v in state.get("planes", {}).items()}
        self.real_any = {k: v.cpu() for k, v in state.get("real_any", {}).items()}
        self.fake_any = {k: v.cpu() for k, v in state.get("fake_any", {}).items()}
        self.reference = {k: v.to(device) for k, v in state.get("reference", {}).items()}


#: Masks, reference gradient and experience count in checkpoints.
STATE = plugin_state(RegOPlugin, "rego", on_device=True)
