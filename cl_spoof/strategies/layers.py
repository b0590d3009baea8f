"""Which layers a method touches, and what each layer's weight multiplies.

Shared by the projection methods (RAWM, RWM), RegO and ``train.trainable``:

- :func:`select` matches fnmatch-style name patterns against parameter or module
  names. A pattern matches a name itself or anything under it (``"blocks.0"``
  matches ``blocks.0.conv1.weight``); a pattern that matches nothing is a
  :class:`~cl_spoof.errors.ConfigError` naming the config key.
- :func:`weight_layers` finds the layers whose weight acts linearly on an
  input vector — ``nn.Linear``, ``nn.Conv1d`` (one flattened ``C·K`` patch per
  output position) and the input-to-hidden weights of an ``nn.GRU`` — and
  :class:`InputRows` turns a layer's input into the rows ``x`` with
  ``output = W x`` (a constant 1 appended when the layer has a bias, so that
  weight and bias are treated as one matrix ``[W b]``).

Nothing here trains; the functions work on any ``nn.Module``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cl_spoof.errors import ConfigError

__all__ = ["InputRows", "WeightLayer", "matches", "select", "weight_layers"]

#: Most positions (conv output positions, GRU frames) one clip contributes to the
#: input statistics; evenly spaced, so a 2-s clip's 4,000 front-end positions
#: cost 256 rows. The statistics are averages, so a subsample estimates them well.
POSITIONS_PER_CLIP = 256


def matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` (fnmatch) names ``name`` or a module that contains it."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")


def select(names: Iterable[str], patterns: Sequence[str], key: str) -> list[str]:
    """The ``names`` matched by any of ``patterns``, in their order.

    Raises :class:`ConfigError` naming ``key`` for a pattern that matches no name.
    """
    names = list(names)
    for pattern in patterns:
        if not any(matches(n, pattern) for n in names):
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"{key}: pattern {pattern!r} matches no layer of the model "
                              f"(names: {shown})")
    return [n for n in names if any(matches(n, p) for p in patterns)]


def _subsample(rows: torch.Tensor, dim: int) -> torch.Tensor:
    """At most :data:`POSITIONS_PER_CLIP` evenly spaced entries along ``dim``."""
    n = rows.shape[dim]
    if n <= POSITIONS_PER_CLIP:
        return rows
    index = torch.linspace(0, n - 1, POSITIONS_PER_CLIP, device=rows.device).round().long()
    return rows.index_select(dim, index)


def _with_bias(rows: torch.Tensor, bias: bool) -> torch.Tensor:
    if not bias:
        return rows
    return torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)


@dataclass(frozen=True)
class WeightLayer:
    """One weight matrix ``W`` (out × d, bias folded in as a last column when present).

    ``module`` is the layer, ``weight`` / ``bias`` the names of its parameters
    (``weight_ih_l1`` for a GRU's second layer), ``gru_layer`` the GRU layer index.
    """

    name: str
    module: nn.Module
    weight: str
    bias: str | None
    gru_layer: int | None = None

    @property
    def key(self) -> str:
        """A unique name: the module's, plus the GRU layer."""
        return self.name if self.gru_layer is None else f"{self.name}.l{self.gru_layer}"

    def parameters(self) -> list[nn.Parameter]:
        """The weight (and bias) parameters, in matrix column order."""
        params = [getattr(self.module, self.weight)]
        if self.bias is not None:
            params.append(getattr(self.module, self.bias))
        return params

    @property
    def dim(self) -> int:
        """``d``: the length of one input row (bias column included)."""
        w = getattr(self.module, self.weight)
        return int(w[0].numel()) + (1 if self.bias is not None else 0)

    def matrix(self, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``[W b]`` as an ``out × d`` matrix from tensors shaped like the parameters."""
        m = weight.reshape(weight.shape[0], -1)
        return m if bias is None else torch.cat([m, bias.reshape(-1, 1)], dim=1)

    def split(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inverse of :meth:`matrix`: tensors shaped like the weight and the bias."""
        w = getattr(self.module, self.weight)
        if self.bias is None:
            return matrix.reshape(w.shape), None
        return matrix[:, :-1].reshape(w.shape), matrix[:, -1].reshape(-1)


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv1d):
        return module.groups == 1 and module.padding_mode == "zeros" and \
            not isinstance(module.padding, str)
    return isinstance(module, nn.GRU) and not module.bidirectional and module.batch_first


def weight_layers(model: nn.Module, patterns: Sequence[str], key: str) -> list[WeightLayer]:
    """The supported layers of ``model`` whose module names match ``patterns``.

    ``nn.Linear``, ``nn.Conv1d`` (ungrouped, zero or no padding) and batch-first
    unidirectional ``nn.GRU`` (every layer's input-to-hidden weight; the
    hidden-to-hidden weights act on the GRU's own state and are left alone).
    """
    candidates = [(n, m) for n, m in model.named_modules() if n and _supported(m)]
    chosen = set(select([n for n, _ in candidates], patterns, key))
    found: list[WeightLayer] = []
    for name, module in candidates:
        if name not in chosen:
            continue
        if isinstance(module, nn.GRU):
            for k in range(module.num_layers):
                found.append(WeightLayer(name, module, f"weight_ih_l{k}",
                                         f"bias_ih_l{k}" if module.bias else None, k))
        else:
            found.append(WeightLayer(name, module, "weight",
                                     "bias" if module.bias is not None else None))
    return found


class InputRows:
    """The input rows of every :class:`WeightLayer` during forward passes (a context).

    Inside ``with InputRows(layers) as rows:``, every forward of the model leaves
    in ``rows.latest[layer.key]`` a ``(n, d)`` tensor: one row per sample (Linear),
    per subsampled output position (Conv1d) or per subsampled frame (GRU layer),
    and ``rows.samples[layer.key]`` the sample each row belongs to.
    """

    def __init__(self, layers: Sequence[WeightLayer]) -> None:
        self.layers = list(layers)
        self.latest: dict[str, torch.Tensor] = {}
        self.samples: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> InputRows:
        modules: dict[int, tuple[nn.Module, list[WeightLayer]]] = {}
        for layer in self.layers:
            modules.setdefault(id(layer.module), (layer.module, []))[1].append(layer)
        for module, layers in modules.values():
            def hook(module: nn.Module, inputs: tuple, layers: list[WeightLayer] = layers
                     ) -> None:
                self._record(module, inputs[0].detach(), layers)

            self._handles.append(module.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _store(self, layer: WeightLayer, rows: torch.Tensor, per_sample: int) -> None:
        self.latest[layer.key] = _with_bias(rows.float(), layer.bias is not None)
        batch = rows.shape[0] // max(per_sample, 1)
        self.samples[layer.key] = torch.arange(batch, device=rows.device).repeat_interleave(
            per_sample)

    def _record(self, module: nn.Module, x: torch.Tensor, layers: list[WeightLayer]) -> None:
        if isinstance(module, nn.Linear):
            per_sample = int(x[0].numel() // x.shape[-1]) if x.dim() > 1 else 1
            rows = x.reshape(-1, x.shape[-1])
            self._store(layers[0], rows, per_sample)
        elif isinstance(module, nn.Conv1d):
            pad = int(module.padding[0])  # int padding only (see _supported)
            if pad:
                x = F.pad(x, (pad, pad))
            k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
            patches = x.unfold(2, d * (k - 1) + 1, s)[..., ::d]  # (B, C, T, K)
            patches = _subsample(patches, 2).permute(0, 2, 1, 3)  # (B, T', C, K)
            self._store(layers[0], patches.reshape(-1, patches.shape[2] * k), patches.shape[1])
        elif isinstance(module, nn.GRU):
            self._record_gru(module, x, layers)

    def _record_gru(self, gru: nn.GRU, x: torch.Tensor, layers: list[WeightLayer]) -> None:
        """Each GRU layer's input sequence: the GRU input, then each layer's output."""
        wanted = {int(layer.gru_layer or 0): layer for layer in layers}
        seq = x
        for k in range(gru.num_layers):
            if k in wanted:
                frames = _subsample(seq, 1)
                self._store(wanted[k], frames.reshape(-1, frames.shape[-1]), frames.shape[1])
            if k + 1 < gru.num_layers and max(wanted) > k:
                with torch.no_grad():
                    seq = _gru_layer(gru, k, seq)


def _gru_layer(gru: nn.GRU, k: int, x: torch.Tensor) -> torch.Tensor:
    """Output sequence of layer ``k`` of ``gru`` alone (batch first, zero initial state)."""
    # Built on the meta device: no random initialisation, the global RNG is left alone.
    one = nn.GRU(x.shape[-1], gru.hidden_size, num_layers=1, bias=gru.bias, batch_first=True,
                 device="meta", dtype=x.dtype).to_empty(device=x.device)
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if gru.bias else [])
    with torch.no_grad():
        for n in names:
            getattr(one, f"{n}_l0").copy_(getattr(gru, f"{n}_l{k}"))
    return one(x)[0]
