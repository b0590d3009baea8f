"""Res-TSSDNet and Inc-TSSDNet: time-domain 1-D CNNs on the raw waveform.

Hua, Teoh and Zhang, "Towards end-to-end synthetic speech detection", IEEE Signal
Processing Letters 2021 (arXiv 2106.06341), written from the paper's description:

- stem: Conv1d k=7 (no bias) -> BN -> ReLU -> MaxPool 4;
- four stages. Res-TSSDNet: a residual block (main path conv k3 -> BN -> ReLU ->
  conv k3 -> BN -> ReLU -> conv k3; shortcut a 1x1 conv, always; after the sum
  BN -> ReLU). Inc-TSSDNet: four parallel k3 branches with dilations 1, 2, 4, 8
  (each a quarter of the channels, its own BN and ReLU), concatenated, no shortcut;
- MaxPool 4 after stages 1-3, a **global max pool** after stage 4. The paper's pool
  has a fixed kernel (375 frames, i.e. exactly 96,000 samples); here it is adaptive,
  so any input of at least :meth:`TSSDNetConfig.min_length` samples works;
- head: FC 128->64, ReLU, FC 64->32, ReLU, FC 32->2. The 32-d vector after the second
  ReLU is the utterance embedding (the ``embedding`` hook point); the last FC is the
  head. Logits follow cl-spoof's convention (index 1 = bona fide; the paper's code
  uses 0).

Parameters: Res 348,530 and Inc 92,658 at the paper's sizes (a test checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.labels import NUM_CLASSES
from cl_spoof.models.base import MAX_LAYERS, Detector, Preset

__all__ = ["CONFIGS", "PRESETS", "TSSDNet", "TSSDNetConfig"]

Kind = Literal["res", "inc"]


def _ints(value: Any, name: str) -> tuple[int, ...]:
    """A YAML list as a tuple of positive ints (error names ``model.overrides.<name>``)."""
    try:
        items = tuple(int(v) for v in value)
    except TypeError as exc:
        raise ConfigError(f"model.overrides.{name} must be a list of integers; "
                          f"got {value!r}") from exc
    if not items or any(v < 1 for v in items):
        raise ConfigError(f"model.overrides.{name} must be a non-empty list of positive "
                          f"integers; got {list(items)[:8]}")
    if len(items) > MAX_LAYERS:
        raise ConfigError(f"model.overrides.{name} must list at most {MAX_LAYERS} values; "
                          f"got {len(items)}")
    return items


@dataclass(frozen=True)
class TSSDNetConfig:
    """Sizes of a :class:`TSSDNet` (defaults: the paper's Res-TSSDNet)."""

    kind: Kind = "res"
    stem_channels: int = 16
    stem_kernel: int = 7
    channels: tuple[int, ...] = (32, 64, 128, 128)  # output channels of each stage
    pool: int = 4  # max-pool factor after the stem and every stage but the last
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # Inc-TSSDNet branches
    fc_dims: tuple[int, ...] = (64, 32)  # hidden FC sizes; the last is the embedding

    def __post_init__(self) -> None:
        """Normalise list fields to tuples and check every size."""
        for name in ("channels", "dilations", "fc_dims"):
            object.__setattr__(self, name, _ints(getattr(self, name), name))
        if self.kind not in ("res", "inc"):
            raise ConfigError(f"model.overrides.kind must be 'res' or 'inc'; got {self.kind!r}")
        for name in ("stem_channels", "stem_kernel", "pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.overrides.{name} must be a positive integer; "
                                  f"got {value!r}")
        if self.stem_kernel % 2 == 0:
            raise ConfigError(f"model.overrides.stem_kernel must be odd; got {self.stem_kernel}")
        if self.kind == "inc":
            bad = [c for c in self.channels if c % len(self.dilations)]
            if bad:
                raise ConfigError(f"model.overrides.channels: Inc-TSSDNet splits every stage "
                                  f"into {len(self.dilations)} branches, so each width must "
                                  f"divide by {len(self.dilations)}; got {list(self.channels)}")

    def min_length(self) -> int:
        """Shortest input (samples) that leaves one frame for the global max pool."""
        return self.pool ** len(self.channels)  # the stem pool and stages 1..n-1


#: The configs of the TSSDNet presets (see :data:`PRESETS` below).
CONFIGS: dict[str, TSSDNetConfig] = {
    "res_tssdnet": TSSDNetConfig(kind="res"),
    "inc_tssdnet": TSSDNetConfig(kind="inc", channels=(32, 64, 128, 128)),
    # Unit tests: the same layers, a few thousand parameters.
    "tiny_res_tssdnet": TSSDNetConfig(kind="res", stem_channels=4, channels=(8, 8, 16, 16),
                                      fc_dims=(16, 8)),
    "tiny_inc_tssdnet": TSSDNetConfig(kind="inc", stem_channels=4, channels=(8, 8, 16, 16),
                                      fc_dims=(16, 8)),
}


def _conv_bn_relu(in_ch: int, out_ch: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm1d(out_ch), nn.ReLU())


class _ResidualBlock(nn.Module):
    """Res-TSSDNet's block: three k3 convs on the main path, a 1x1 conv shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        """Create the convolutions (no biases, as the paper)."""
        super().__init__()
        self.main = nn.Sequential(
            _conv_bn_relu(in_ch, out_ch), _conv_bn_relu(out_ch, out_ch),
            nn.Conv1d(out_ch, out_ch, 3, padding=1, bias=False))
        self.shortcut = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        self.post = nn.Sequential(nn.BatchNorm1d(out_ch), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T)`` -> ``(B, C_out, T)``."""
        return self.post(self.main(x) + self.shortcut(x))


class _InceptionBlock(nn.Module):
    """Inc-TSSDNet's block: parallel dilated k3 branches, concatenated on channels."""

    def __init__(self, in_ch: int, out_ch: int, dilations: tuple[int, ...]) -> None:
        """One branch of ``out_ch / len(dilations)`` channels per dilation."""
        super().__init__()
        width = out_ch // len(dilations)
        self.branches = nn.ModuleList(_conv_bn_relu(in_ch, width, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T)`` -> ``(B, C_out, T)``."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class TSSDNet(Detector):
    """Res- or Inc-TSSDNet returning 2 logits (index 1 = bona fide).

    Self-distillation segments (:meth:`segments`): the outputs of stages 1 to n-1
    (``stages.0`` ... after their max pool); the deepest exit is the model's own head.
    """

    def __init__(self, config: TSSDNetConfig) -> None:
        """Build the network described by ``config``."""
        super().__init__()
        self.config = c = config
        self.stem = nn.Sequential(
            nn.Conv1d(1, c.stem_channels, c.stem_kernel, padding=c.stem_kernel // 2,
                      bias=False),
            nn.BatchNorm1d(c.stem_channels), nn.ReLU(), nn.MaxPool1d(c.pool))
        stages: list[nn.Module] = []
        in_ch = c.stem_channels
        for i, out_ch in enumerate(c.channels):
            block: nn.Module = (_ResidualBlock(in_ch, out_ch) if c.kind == "res"
                                else _InceptionBlock(in_ch, out_ch, c.dilations))
            last = i == len(c.channels) - 1
            stages.append(block if last else nn.Sequential(block, nn.MaxPool1d(c.pool)))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        fc: list[nn.Module] = []
        for dim in c.fc_dims:
            fc += [nn.Linear(in_ch, dim), nn.ReLU()]
            in_ch = dim
        self.fc = nn.Sequential(*fc)
        self.embedding = nn.Identity()
        self.head = nn.Linear(in_ch, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, L)`` or ``(B, 1, L)`` -> logits ``(B, 2)``."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected a waveform of shape (B, L) or (B, 1, L); "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] < self.min_length():
            raise ValueError(f"input of {x.shape[-1]} samples is too short for this model; "
                             f"it needs at least {self.min_length()}")
        feats = self.stages(self.stem(x))
        pooled = feats.amax(dim=-1)  # global max pool over whatever length remains
        return self.head(self.embedding(self.fc(pooled)))

    def min_length(self) -> int:
        """Shortest input (samples) the model accepts."""
        return self.config.min_length()

    def segments(self) -> tuple[str, ...]:
        """Stages 1 .. n-1 (each after its max pool): the shallow exits of self-distillation."""
        return tuple(f"stages.{i}" for i in range(len(self.config.channels) - 1))

    def compile_frontend(self, backend: str = "inductor") -> None:
        """``torch.compile`` the stem and the stages in place (where the time goes)."""
        self.stem.compile(backend=backend)
        for stage in self.stages:
            stage.compile(backend=backend)


#: The TSSDNet presets, collected by :mod:`cl_spoof.models.presets`.
PRESETS: tuple[Preset, ...] = (
    Preset("res_tssdnet", "Res-TSSDNet (Hua et al. 2021): 1-D residual CNN on the waveform",
           CONFIGS["res_tssdnet"], TSSDNet, order=50),
    Preset("inc_tssdnet", "Inc-TSSDNet (Hua et al. 2021): 1-D dilated inception CNN",
           CONFIGS["inc_tssdnet"], TSSDNet, order=60),
    Preset("tiny_res_tssdnet", "Res-TSSDNet for unit tests", CONFIGS["tiny_res_tssdnet"],
           TSSDNet, order=90),
    Preset("tiny_inc_tssdnet", "Inc-TSSDNet for unit tests", CONFIGS["tiny_inc_tssdnet"],
           TSSDNet, order=100),
)
