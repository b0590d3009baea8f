"""AASIST and AASIST-L: spectro-temporal graph attention on the raw waveform, with the
authors' pretrained weights.

Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph
Attention Networks", ICASSP 2022 (arXiv 2110.01200): the baseline of most spoofing
papers. Written from the paper and the facts of the authors' published network; the
module and parameter names are the authors', so their state dicts (``AASIST.pth``,
``AASIST-L.pth``, MIT licence, trained on ASVspoof 2019 LA train; their reported
eval EER 0.83 % and 0.99 %) load with ``strict=True``: :func:`load_official`.

Presets (:data:`CONFIGS`, values of the authors' ``model_config``):

- ``aasist``: 297,354 trainable parameters (297,866 values in the file, see the quirk);
- ``aasist_l``: the light variant, 85,034 trainable (85,306 in the file);
- ``tiny_aasist``: the same layers, a few thousand parameters, for tests.

**Input convention.** 16 kHz waveform; the authors train and score on 64,600 samples
(:data:`INPUT_SAMPLES`, about 4.04 s): the first 64,600 samples, a shorter clip
repeated from its start (cl-spoof's evaluation crop with ``data.num_samples: 64600``),
no level normalisation. Any length from :meth:`AASIST.min_length` works; the number of
temporal graph nodes grows with it.

**Network.**

- Front end: a *fixed* sinc band-pass filterbank (``sinc_filters`` filters of
  ``sinc_kernel`` samples made odd, band edges equally spaced on the mel scale from 0
  to fs/2, Hamming-windowed ideal band-passes, stride 1, no padding), a buffer outside
  the state dict; ``|.|``, max-pool (3, 3) over (filter, time), BatchNorm, SELU.
- Encoder: six 2-D residual blocks (conv (2, 3) -> BN -> SELU -> conv (2, 3), plus the
  input through a (1, 3) conv where the channel count changes; max-pool (1, 3) over
  time); output channels ``channels`` (the last repeated by blocks 5 and 6).
- Graphs: spectral nodes (max of ``|e|`` over time, plus the learned ``pos_S``) and
  temporal nodes (max over frequency), each through a graph-attention layer and a
  graph pool; then two parallel branches of two heterogeneous graph-attention layers
  over temporal + spectral nodes with a learned master node, graph pools between, and
  residual sums; the branches are merged by element-wise max. Readout: max ``|.|`` and
  mean of the temporal and spectral nodes and the master node (``5 * gat_dims[1]``
  values: the utterance embedding, the ``embedding`` hook point) -> Linear -> 2 logits,
  index 1 = bona fide as in the authors' files (the score is that logit).
- Dropouts in training only: 0.2 on the attention layers' inputs, 0.3 on the pools'
  score inputs, 0.2 on each branch output, 0.5 before the output layer. The authors'
  optional frequency mask (``freq_mask``: zero fewer than that many consecutive sinc
  filters, a random count at a random place per training forward; they used 20) is off
  by default.

**The quirk.** Every residual block but the first holds a BatchNorm ``bn1`` in the
authors' state dict, but their forward applies the first convolution to the block's
raw input, so ``bn1`` (and the SELU after it) never touches the output. Faithful to
that, ``bn1`` here only stores its five entries as buffers (weight, bias, running
statistics; the authors' files hold weight 1 and bias 0: it never learned) and is never
applied: a port that applies it does not reproduce the authors' scores. Not being
parameters, they take no gradient, optimizer state or data-parallel reduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_spoof.errors import ConfigError, DataError
from cl_spoof.infra.checkpoints import state_mismatch
from cl_spoof.labels import NUM_CLASSES
from cl_spoof.models.base import Detector, Preset
from cl_spoof.models.frontends import mel_band_edges

__all__ = ["AASIST", "CONFIGS", "INPUT_SAMPLES", "PRESETS", "SUMMARIES", "AASISTConfig",
           "load_official", "load_official_state"]

#: The input length (samples at 16 kHz) the authors train and score on.
INPUT_SAMPLES = 64_600

#: Encoder blocks; blocks 5 and 6 repeat the last width of ``channels``.
_BLOCKS = 6
#: Max-pool factor over time after the front end and after every encoder block.
_POOL = 3


def _ints(value: Any, name: str, count: int) -> tuple[int, ...]:
    """``count`` positive integers (error names ``model.overrides.<name>``)."""
    try:
        items = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.overrides.{name} must be a list of {count} integers; "
                          f"got {value!r}") from exc
    if len(items) != count or any(v < 1 for v in items):
        raise ConfigError(f"model.overrides.{name} must be {count} positive integers; "
                          f"got {list(items)}")
    return items


def _floats(value: Any, name: str, count: int, upper: float | None = None) -> tuple[float, ...]:
    """``count`` positive numbers, at most ``upper`` (error names the key)."""
    bound = f" in (0, {upper:g}]" if upper is not None else " positive"
    try:
        items = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.overrides.{name} must be a list of {count} numbers; "
                          f"got {value!r}") from exc
    if len(items) != count or any(not v > 0 or (upper is not None and v > upper)
                                  for v in items):
        raise ConfigError(f"model.overrides.{name} must be {count} numbers{bound}; "
                          f"got {list(items)}")
    return items


@dataclass(frozen=True)
class AASISTConfig:
    """Sizes of an :class:`AASIST` (defaults: the authors' AASIST).

    From the authors' ``model_config`` (:meth:`from_model_config`): ``sinc_filters`` =
    ``filts[0]``, ``sinc_kernel`` = ``first_conv`` (made odd), ``channels`` = the
    output channels of ``filts[1:]`` (encoder blocks 1-4; blocks 5-6 repeat the last),
    ``gat_dims`` (graph-attention and heterogeneous-layer widths), ``pool_ratios``
    (kept fraction of nodes: [0] spectral pool, [1] temporal pool, [2] every pool of the
    heterogeneous branches; [3] is not used by the network) and ``temperatures`` of the
    attention softmax ([0] spectral, [1] temporal, [2] every heterogeneous layer; [3]
    not used). ``sample_rate`` (Hz) places the filterbank's band edges; ``freq_mask``
    > 0 zeroes ``randint(0, freq_mask)`` consecutive sinc filters per training forward.
    """

    sinc_filters: int = 70
    sinc_kernel: int = 128
    channels: tuple[int, ...] = (32, 32, 64, 64)
    gat_dims: tuple[int, ...] = (64, 32)
    pool_ratios: tuple[float, ...] = (0.5, 0.7, 0.5, 0.5)
    temperatures: tuple[float, ...] = (2.0, 2.0, 100.0, 100.0)
    sample_rate: int = 16_000
    freq_mask: int = 0

    def __post_init__(self) -> None:
        """Normalise list fields to tuples and check every size (errors name the key)."""
        object.__setattr__(self, "channels", _ints(self.channels, "channels", 4))
        object.__setattr__(self, "gat_dims", _ints(self.gat_dims, "gat_dims", 2))
        object.__setattr__(self, "pool_ratios",
                           _floats(self.pool_ratios, "pool_ratios", 4, upper=1.0))
        object.__setattr__(self, "temperatures",
                           _floats(self.temperatures, "temperatures", 4))
        for name, low in (("sinc_filters", _POOL), ("sinc_kernel", 1), ("sample_rate", 1),
                          ("freq_mask", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"model.overrides.{name} must be an integer >= {low}; "
                                  f"got {value!r}")
        if self.freq_mask > self.sinc_filters:
            raise ConfigError(f"model.overrides.freq_mask must be at most sinc_filters "
                              f"({self.sinc_filters}); got {self.freq_mask}")

    @classmethod
    def from_model_config(cls, model_config: Mapping[str, Any],
                          sample_rate: int = 16_000) -> AASISTConfig:
        """The config of the authors' JSON ``model_config`` (their ``.conf`` files)."""
        try:
            filts = list(model_config["filts"])
            pairs = [tuple(int(v) for v in f) for f in filts[1:]]
            first_conv = int(model_config["first_conv"])
            gat_dims, pool_ratios = model_config["gat_dims"], model_config["pool_ratios"]
            temperatures = model_config["temperatures"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model_config: not an AASIST model_config ({exc!r})") from exc
        chain = [1, *(p[1] for p in pairs[:-1])]
        if len(pairs) != 4 or any(len(p) != 2 for p in pairs) or \
                [p[0] for p in pairs] != chain:
            raise ConfigError(f"model_config.filts: expected a filter count and four "
                              f"chained [in, out] pairs starting at 1; got {filts!r}")
        return cls(sinc_filters=int(filts[0]), sinc_kernel=first_conv,
                   channels=tuple(p[1] for p in pairs), gat_dims=tuple(gat_dims),
                   pool_ratios=tuple(pool_ratios), temperatures=tuple(temperatures),
                   sample_rate=sample_rate)

    @property
    def kernel(self) -> int:
        """Length of the sinc filters (``sinc_kernel`` made odd: symmetric filters)."""
        return self.sinc_kernel | 1

    @property
    def spectral_nodes(self) -> int:
        """Nodes of the spectral graph: the sinc filters after the (3, 3) max-pool."""
        return self.sinc_filters // _POOL

    @property
    def embedding_dim(self) -> int:
        """Size of the readout (the utterance embedding)."""
        return 5 * self.gat_dims[1]

    def block_channels(self) -> list[tuple[int, int]]:
        """``(in, out)`` channels of the six encoder blocks."""
        outs = [*self.channels, *[self.channels[-1]] * (_BLOCKS - len(self.channels))]
        return list(zip([1, *outs[:-1]], outs, strict=True))

    def min_length(self) -> int:
        """Shortest input (samples): one time frame left after the seven max-pools."""
        return _POOL ** (_BLOCKS + 1) + self.kernel - 1


#: The AASIST presets (registered in :mod:`cl_spoof.models.registry`).
CONFIGS: dict[str, AASISTConfig] = {
    # The authors' AASIST.conf and AASIST-L.conf (model_config).
    "aasist": AASISTConfig(),
    "aasist_l": AASISTConfig(channels=(32, 32, 24, 24), gat_dims=(24, 32),
                             pool_ratios=(0.4, 0.5, 0.7, 0.5)),
    # Unit tests: every layer, a few thousand parameters.
    "tiny_aasist": AASISTConfig(sinc_filters=12, sinc_kernel=32, channels=(4, 4, 8, 8),
                                gat_dims=(8, 8)),
}

#: One line per preset (the registry's summaries).
SUMMARIES: dict[str, str] = {
    "aasist": "AASIST (Jung et al. 2022): sinc filterbank + 2-D residual encoder + "
              "spectro-temporal graph attention; loads the authors' AASIST.pth",
    "aasist_l": "AASIST-L: the light AASIST; loads the authors' AASIST-L.pth",
    "tiny_aasist": "AASIST for unit tests",
}


class SincFilterbank(nn.Module):
    """AASIST's fixed sinc band-pass filterbank (no learned parameters, no state entries).

    Filter ``i`` passes mel-spaced band ``i``: ``2 f2/fs sinc(2 f2 n/fs) - 2 f1/fs
    sinc(2 f1 n/fs)`` for ``n = -(K-1)/2 .. (K-1)/2``, times a Hamming window (built in
    float64, stored in float32). ``mask > 0`` zeroes ``randint(0, mask)`` consecutive
    filters at a random place in each training forward.
    """

    filters: torch.Tensor

    def __init__(self, count: int, kernel: int, sample_rate: int, mask: int = 0) -> None:
        """``count`` filters of ``kernel`` samples (odd) for input at ``sample_rate``."""
        super().__init__()
        self.mask = mask
        edges = mel_band_edges(count, sample_rate)  # float64, 0 .. fs/2
        half = (kernel - 1) // 2
        n = torch.arange(-half, half + 1, dtype=torch.float64)[None, :] / sample_rate

        def low_pass(f: torch.Tensor) -> torch.Tensor:
            return 2 * f[:, None] / sample_rate * torch.sinc(2 * f[:, None] * n)

        window = torch.hamming_window(kernel, periodic=False, dtype=torch.float64)
        bank = (low_pass(edges[1:]) - low_pass(edges[:-1])) * window
        self.register_buffer("filters", bank.float().unsqueeze(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, L)`` -> ``(B, count, L - kernel + 1)``."""
        filters = self.filters
        if self.training and self.mask > 0:
            width = int(torch.randint(0, self.mask, ()))
            start = int(torch.randint(0, filters.shape[0] - width + 1, ()))
            filters = filters.clone()
            filters[start:start + width] = 0
        return F.conv1d(x, filters.to(x.dtype))


class _InertBatchNorm(nn.Module):
    """The five state entries of the authors' unused ``bn1`` (buffers; never applied)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))


class _ResidualBlock(nn.Module):
    """conv (2, 3) -> BN -> SELU -> conv (2, 3), plus the (projected) input; pool (1, 3).

    The two convolutions keep the frequency axis (padding (1, 1) then (0, 1)).
    """

    def __init__(self, in_ch: int, out_ch: int, first: bool) -> None:
        super().__init__()
        if not first:
            self.bn1 = _InertBatchNorm(in_ch)  # the authors' quirk: stored, not applied
        self.conv1 = nn.Conv2d(in_ch, out_ch, (2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, (2, 3), padding=(0, 1))
        if in_ch != out_ch:
            self.conv_downsample = nn.Conv2d(in_ch, out_ch, (1, 3), padding=(0, 1))
        self.act = nn.SELU()
        self.pool = nn.MaxPool2d((1, _POOL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, F, T)`` -> ``(B, C_out, F, T // 3)``."""
        out = self.conv2(self.act(self.bn2(self.conv1(x))))
        shortcut = self.conv_downsample(x) if hasattr(self, "conv_downsample") else x
        return self.pool(out + shortcut)


def _attention_vector(dim: int) -> nn.Parameter:
    weight = torch.empty(dim, 1)
    nn.init.xavier_normal_(weight)
    return nn.Parameter(weight)


def _pair_products(x: torch.Tensor) -> torch.Tensor:
    """``(B, N, D)`` -> ``(B, N, N, D)``: the element-wise product of every node pair."""
    return x.unsqueeze(2) * x.unsqueeze(1)


def _norm_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the features of every node of every graph."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class _GraphAttention(nn.Module):
    """Graph attention over fully connected nodes ``(B, N, D_in) -> (B, N, D_out)``.

    Attention of node i to node j: softmax over j of ``w . tanh(W (x_i * x_j) + b) / t``;
    output ``Linear(sum_j a_ij x_j) + Linear(x_i)``, then BatchNorm and SELU.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float) -> None:
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _attention_vector(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.2)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D_in)`` -> ``(B, N, D_out)``."""
        x = self.drop(x)
        logits = (torch.tanh(self.att_proj(_pair_products(x))) @ self.att_weight).squeeze(-1)
        att = torch.softmax(logits / self.temperature, dim=-1)  # (B, N, N)
        out = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return self.act(_norm_nodes(self.bn, out))


class _HeteroGraphAttention(nn.Module):
    """Heterogeneous graph attention over two node types and a master node.

    Each type is first projected by its own linear layer; pair attention as in
    :class:`_GraphAttention` but with one attention vector for type-1 pairs, one for
    type-2 pairs and one shared by the mixed pairs. The master node attends to every
    node (``w_M . tanh(W_M (x_j * m))``) and is updated as ``Linear(sum_j a_j x_j) +
    Linear(m)``, without normalisation.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float) -> None:
        super().__init__()
        self.att_weight11 = _attention_vector(out_dim)
        self.att_weight22 = _attention_vector(out_dim)
        self.att_weight12 = _attention_vector(out_dim)
        self.att_weightM = _attention_vector(out_dim)
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.2)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Nodes ``(B, N1, D)``, ``(B, N2, D)``, master ``(B or 1, 1, D)`` -> updated
        nodes ``(B, N1, D_out)``, ``(B, N2, D_out)`` and master ``(B, 1, D_out)``."""
        n1 = x1.shape[1]
        x = self.drop(torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1))
        hidden = torch.tanh(self.att_proj(_pair_products(x)))  # (B, N, N, H)
        vectors = torch.cat([self.att_weight11, self.att_weight22, self.att_weight12], dim=1)
        scores = hidden @ vectors  # (B, N, N, 3): every pair under each of the three vectors
        is_type2 = torch.arange(x.shape[1], device=x.device) >= n1
        kind = torch.where(is_type2[:, None] == is_type2[None, :], is_type2.long()[:, None],
                           torch.full((), 2, device=x.device))  # 0: 1-1, 1: 2-2, 2: mixed
        logits = scores.gather(-1, kind.expand(*scores.shape[:-1]).unsqueeze(-1)).squeeze(-1)
        att = torch.softmax(logits / self.temperature, dim=-1)  # (B, N, N)

        m_logits = (torch.tanh(self.att_projM(x * master)) @ self.att_weightM).squeeze(-1)
        m_att = torch.softmax(m_logits / self.temperature, dim=-1)  # (B, N)
        master = self.proj_with_attM(m_att.unsqueeze(1) @ x) + self.proj_without_attM(master)

        out = self.act(_norm_nodes(self.bn, self.proj_with_att(att @ x)
                                   + self.proj_without_att(x)))
        return out[:, :n1], out[:, n1:], master


class _GraphPool(nn.Module):
    """Keep the top ``ratio`` of the nodes by a learned sigmoid score, scaled by it."""

    def __init__(self, ratio: float, dim: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 1)
        self.drop = nn.Dropout(dropout)
        self.ratio = ratio

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` -> ``(B, max(int(N * ratio), 1), D)``, best-scored first."""
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        keep = max(int(h.shape[1] * self.ratio), 1)
        index = scores.topk(keep, dim=1).indices.expand(-1, -1, h.shape[2])
        return torch.gather(h * scores, 1, index)


class AASIST(Detector):
    """AASIST / AASIST-L returning 2 logits (index 1 = bona fide); see the module notes.

    Self-distillation segments (:meth:`segments`): the outputs of encoder blocks 2, 4
    and 6 (``encoder.1``, ``encoder.3``, ``encoder.5``: ``(B, C, F, T)`` maps); the
    deepest exit is the model's own head.
    """

    def __init__(self, config: AASISTConfig) -> None:
        """Build the network described by ``config`` (randomly initialised)."""
        super().__init__()
        self.config = c = config
        width = c.channels[-1]
        d0, d1 = c.gat_dims
        r, t = c.pool_ratios, c.temperatures
        self.pos_S = nn.Parameter(torch.randn(1, c.spectral_nodes, width))
        self.master1 = nn.Parameter(torch.randn(1, 1, d0))
        self.master2 = nn.Parameter(torch.randn(1, 1, d0))
        self.sinc = SincFilterbank(c.sinc_filters, c.kernel, c.sample_rate, c.freq_mask)
        self.first_bn = nn.BatchNorm2d(1)
        self.act = nn.SELU()
        self.encoder = nn.Sequential(*(nn.Sequential(_ResidualBlock(i, o, first=k == 0))
                                       for k, (i, o) in enumerate(c.block_channels())))
        self.GAT_layer_S = _GraphAttention(width, d0, t[0])
        self.GAT_layer_T = _GraphAttention(width, d0, t[1])
        self.HtrgGAT_layer_ST11 = _HeteroGraphAttention(d0, d1, t[2])
        self.HtrgGAT_layer_ST12 = _HeteroGraphAttention(d1, d1, t[2])
        self.HtrgGAT_layer_ST21 = _HeteroGraphAttention(d0, d1, t[2])
        self.HtrgGAT_layer_ST22 = _HeteroGraphAttention(d1, d1, t[2])
        self.pool_S = _GraphPool(r[0], d0)
        self.pool_T = _GraphPool(r[1], d0)
        self.pool_hS1 = _GraphPool(r[2], d1)
        self.pool_hT1 = _GraphPool(r[2], d1)
        self.pool_hS2 = _GraphPool(r[2], d1)
        self.pool_hT2 = _GraphPool(r[2], d1)
        self.branch_drop = nn.Dropout(0.2)
        self.embedding = nn.Identity()
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(c.embedding_dim, NUM_CLASSES)

    def _branch(self, temporal: torch.Tensor, spectral: torch.Tensor, master: torch.Tensor,
                first: _HeteroGraphAttention, pool_t: _GraphPool, pool_s: _GraphPool,
                second: _HeteroGraphAttention
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One heterogeneous branch: layer, pools, a second layer added as a residual."""
        t, s, m = first(temporal, spectral, master)
        t, s = pool_t(t), pool_s(s)
        t_aug, s_aug, m_aug = second(t, s, m)
        return t + t_aug, s + s_aug, m + m_aug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, L)`` or ``(B, 1, L)`` -> logits ``(B, 2)``."""
        return self.forward_suffix(self.run_prefix(x))

    def prefix_modules(self) -> tuple[str, ...]:
        """The sinc front end and the residual encoder (none with ``freq_mask``, which
        masks random filters in every training forward)."""
        return () if self.config.freq_mask else ("sinc", "first_bn", "encoder")

    def no_prefix_reason(self) -> str:
        """Why there is no prefix (``freq_mask``)."""
        return ("model.overrides.freq_mask > 0 masks random sinc filters in every training "
                "forward, so the encoder's output is never the same twice; set it to 0")

    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform -> ``|encoder output|`` ``(B, C, F, T')``."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected a waveform of shape (B, L) or (B, 1, L); "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] < self.min_length():
            raise ValueError(f"input of {x.shape[-1]} samples is too short for this model; "
                             f"it needs at least {self.min_length()}")
        bands = F.max_pool2d(self.sinc(x).abs().unsqueeze(1), (_POOL, _POOL))  # (B,1,F,T)
        return self.encoder(self.act(self.first_bn(bands))).abs()  # (B, C, F, T')

    def forward_suffix(self, e: torch.Tensor) -> torch.Tensor:
        """``|encoder output|`` -> graphs, readout, logits ``(B, 2)``."""
        spectral = e.amax(dim=3).transpose(1, 2) + self.pos_S  # (B, F, C)
        temporal = e.amax(dim=2).transpose(1, 2)  # (B, T', C)
        spectral = self.pool_S(self.GAT_layer_S(spectral))
        temporal = self.pool_T(self.GAT_layer_T(temporal))
        t1, s1, m1 = self._branch(temporal, spectral, self.master1, self.HtrgGAT_layer_ST11,
                                  self.pool_hT1, self.pool_hS1, self.HtrgGAT_layer_ST12)
        t2, s2, m2 = self._branch(temporal, spectral, self.master2, self.HtrgGAT_layer_ST21,
                                  self.pool_hT2, self.pool_hS2, self.HtrgGAT_layer_ST22)
        drop = self.branch_drop
        t = torch.maximum(drop(t1), drop(t2))
        s = torch.maximum(drop(s1), drop(s2))
        m = torch.maximum(drop(m1), drop(m2))
        hidden = torch.cat([t.abs().amax(dim=1), t.mean(dim=1), s.abs().amax(dim=1),
                            s.mean(dim=1), m.squeeze(1)], dim=1)
        return self.out_layer(self.drop(self.embedding(hidden)))

    def min_length(self) -> int:
        """Shortest input (samples) the model accepts."""
        return self.config.min_length()

    def segments(self) -> tuple[str, ...]:
        """Encoder blocks 2, 4 and 6: the shallow exits of self-distillation."""
        return ("encoder.1", "encoder.3", "encoder.5")

    def compile_frontend(self, backend: str = "inductor") -> None:
        """``torch.compile`` the encoder blocks in place (the graph part stays eager)."""
        for block in self.encoder:
            block.compile(backend=backend)

    def load_official(self, path: str | Path) -> None:
        """Load the authors' state dict file ``path`` (see :func:`load_official`)."""
        load_official(self, path)


# ------------------------------------------------------------------ the authors' files


def load_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in the authors' file ``path`` (a ``torch.save``d dict of tensors),
    read on the CPU without unpickling code. Raises :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; give the authors' AASIST.pth or "
                        "AASIST-L.pth")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise DataError(f"{path}: not a readable PyTorch state dict ({exc})") from exc
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise DataError(f"{path}: expected a state dict (names -> tensors); got "
                        f"{type(state).__name__}")
    return dict(state)


def load_official(model: nn.Module, path: str | Path) -> None:
    """Load the authors' file ``path`` into ``model`` with ``strict=True``, after checking
    that it fits (:func:`~cl_spoof.infra.checkpoints.state_mismatch`): a
    :class:`ConfigError` line naming the file and every kind of mismatch otherwise."""
    state = load_official_state(path)
    problem = state_mismatch(model.state_dict(), state)
    if problem is not None:
        raise ConfigError(f"{path}: does not fit {type(model).__name__} with this config: "
                          f"{problem}; is it the file of this preset (AASIST.pth: aasist, "
                          "AASIST-L.pth: aasist_l)?")
    model.load_state_dict(state, strict=True)


#: The family's presets (collected by :mod:`cl_spoof.models.presets`), after the
#: ResNet-GRU, TSSDNet, LFCC-LCNN and SSL presets.
PRESETS: tuple[Preset, ...] = (
    Preset("aasist", SUMMARIES["aasist"], CONFIGS["aasist"], AASIST, order=120),
    Preset("aasist_l", SUMMARIES["aasist_l"], CONFIGS["aasist_l"], AASIST, order=121),
    Preset("tiny_aasist", SUMMARIES["tiny_aasist"], CONFIGS["tiny_aasist"], AASIST,
           order=122),
)
