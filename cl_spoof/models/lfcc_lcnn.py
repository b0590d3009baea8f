"""LFCC-LCNN: a light CNN with max-feature-map activations on LFCCs.

Wang and Yamagishi, "A comparative study on recent neural spoofing countermeasures
for synthetic speech detection", Interspeech 2021 (the ASVspoof 2021 LFCC-LCNN
baseline), written from its description.

**Front end** (torchaudio's :class:`~torchaudio.transforms.LFCC`): pre-emphasis
``1 - 0.97 z^-1``; 20 ms Hamming frames every 10 ms, FFT 512, centred with zero
padding; power spectrum; 20 linear triangular filters over 0-8 kHz; log; orthonormal
DCT-II keeping 20 coefficients; deltas and delta-deltas (torchaudio's
``compute_deltas`` with a 3-frame window, i.e. ``(x[t+1] - x[t-1]) / 2``) -> 60 dims.
Differences from the reference code, all scale or a single coefficient: natural log
instead of log10, c0 is the DCT's own (the reference swaps in the log frame energy),
deltas are halved.

**Trunk** (input ``(B, 1, T, 60)``; MFM = element-wise max of the two channel halves;
BatchNorm without affine parameters, as the reference):

====== ============================================================ ======
block  layers                                                       out ch
====== ============================================================ ======
1      conv 5x5 -> MFM; max-pool 2x2                                32
2      conv 1x1 -> MFM, BN; conv 3x3 -> MFM; max-pool 2x2; BN       48
3      conv 1x1 -> MFM, BN; conv 3x3 -> MFM; max-pool 2x2           64
4      conv 1x1 -> MFM, BN; conv 3x3 -> MFM, BN                     32
5      conv 1x1 -> MFM, BN; conv 3x3 -> MFM; max-pool 2x2           32
====== ============================================================ ======

**Pooling: LSTM-sum** (the paper's best variant): dropout 0.7, the ``(B, T/16, 32 x 3)``
frames through two stacked bidirectional LSTMs (96 -> 96), added to their input (a
skip), averaged over time (the ASVspoof 2021 baseline's choice; the summed variant
grows with the clip length), then Linear 96 -> 64 = the utterance embedding.

**Head**: Linear 64 -> 2 plain logits trained with cross-entropy, like every cl-spoof
detector; the paper's P2SGrad / AM-softmax / sigmoid heads do not fit strategies and
metrics that read two logits. Parameters: 157,504 in the trunk (no BN parameters),
275,970 in all (the reference with P2SGrad: about 276k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.labels import NUM_CLASSES, SAMPLE_RATE
from cl_spoof.models.base import Detector, Preset

__all__ = ["CONFIGS", "PRESETS", "LCNNConfig", "LFCCLCNN"]

@dataclass(frozen=True)
class LCNNConfig:
    """Sizes of an :class:`LFCCLCNN` (defaults: the paper's)."""

    n_lfcc: int = 20  # cepstra kept; with deltas and delta-deltas the input has 3x as many
    n_filter: int = 20
    n_fft: int = 512
    win_length: int = 320
    hop_length: int = 160
    f_max: float = 8000.0
    pre_emphasis: float = 0.97
    channels: tuple[int, ...] = (32, 48, 64, 32, 32)  # block outputs (after MFM)
    lstm_dropout: float = 0.7  # dropout before the LSTMs
    embedding_dim: int = 64
    # Rate of the input (data.sample_rate; build_model sets it). Framing is in samples:
    # at 24 kHz, win_length 480 / hop_length 240 / f_max 12000 keep the paper's framing
    # in ms and cover the whole band.
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        """Normalise ``channels`` to a tuple and check every size."""
        try:
            channels = tuple(int(v) for v in self.channels)
        except TypeError as exc:
            raise ConfigError(f"model.overrides.channels must be a list of 5 integers; "
                              f"got {self.channels!r}") from exc
        if len(channels) != 5 or any(c < 1 for c in channels):
            raise ConfigError(f"model.overrides.channels must be 5 positive integers (one per "
                              f"LCNN block); got {list(channels)}")
        object.__setattr__(self, "channels", channels)
        for name in ("n_lfcc", "n_filter", "n_fft", "win_length", "hop_length",
                     "embedding_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.overrides.{name} must be a positive integer; "
                                  f"got {value!r}")
        if self.n_lfcc > self.n_filter:
            raise ConfigError(f"model.overrides.n_lfcc ({self.n_lfcc}) must not exceed "
                              f"model.overrides.n_filter ({self.n_filter})")
        if 3 * self.n_lfcc < 16:
            raise ConfigError("model.overrides.n_lfcc must be at least 6 (the trunk halves "
                              "the 3 x n_lfcc feature axis four times)")
        if self.frame_dim % 2:
            raise ConfigError(f"model.overrides: the LSTM input (channels[4] x "
                              f"(3 n_lfcc // 16) = {self.frame_dim}) must be even, as each "
                              "direction of the bidirectional LSTM has half of it")
        if self.win_length > self.n_fft:
            raise ConfigError(f"model.overrides.win_length ({self.win_length}) must not exceed "
                              f"model.overrides.n_fft ({self.n_fft})")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or self.sample_rate < 1000:
            raise ConfigError(f"data.sample_rate must be an integer of at least 1000 Hz; "
                              f"got {self.sample_rate!r}")
        if not 0.0 < self.f_max <= self.sample_rate / 2:
            raise ConfigError(f"model.overrides.f_max must be in (0, {self.sample_rate // 2}] Hz "
                              f"(half of data.sample_rate); got {self.f_max}")
        if not 0.0 <= self.pre_emphasis < 1.0:
            raise ConfigError(f"model.overrides.pre_emphasis must be in [0, 1); "
                              f"got {self.pre_emphasis}")
        if not 0.0 <= self.lstm_dropout < 1.0:
            raise ConfigError(f"model.overrides.lstm_dropout must be in [0, 1); "
                              f"got {self.lstm_dropout}")

    @property
    def frame_dim(self) -> int:
        """Size of one trunk frame fed to the LSTMs (channels x remaining feature bins)."""
        return self.channels[-1] * (3 * self.n_lfcc // 16)

    def min_length(self) -> int:
        """Shortest input (samples): 16 LFCC frames (the trunk pools time by 16)."""
        return 15 * self.hop_length


#: The configs of the LFCC-LCNN presets (see :data:`PRESETS` below).
CONFIGS: dict[str, LCNNConfig] = {
    "lfcc_lcnn": LCNNConfig(),
    "tiny_lfcc_lcnn": LCNNConfig(channels=(4, 6, 8, 4, 4), embedding_dim=8),
}


class MaxFeatureMap(nn.Module):
    """Max-feature-map: the element-wise maximum of the two halves of the channel axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2C, ...)`` -> ``(B, C, ...)``."""
        a, b = x.chunk(2, dim=1)
        return torch.maximum(a, b)


def _mfm_conv(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    """Conv (``2 out_ch`` channels, "same" padding, bias) followed by MFM to ``out_ch``."""
    return [nn.Conv2d(in_ch, 2 * out_ch, kernel, padding=kernel // 2), MaxFeatureMap()]


def _bn(ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch, affine=False)


class LFCCFrontEnd(nn.Module):
    """Waveform ``(B, L)`` -> LFCC + deltas + delta-deltas ``(B, 1, T, 3 n_lfcc)``."""

    def __init__(self, c: LCNNConfig) -> None:
        """torchaudio's LFCC with the paper's framing (see the module docstring)."""
        super().__init__()
        self.pre_emphasis = c.pre_emphasis
        self.lfcc = torchaudio.transforms.LFCC(
            sample_rate=c.sample_rate, n_filter=c.n_filter, f_min=0.0, f_max=c.f_max,
            n_lfcc=c.n_lfcc, dct_type=2, norm="ortho", log_lf=True,
            speckwargs={"n_fft": c.n_fft, "win_length": c.win_length,
                        "hop_length": c.hop_length, "window_fn": torch.hamming_window,
                        "power": 2.0, "center": True, "pad_mode": "constant"})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 1, T, 3 n_lfcc)`` (time first, as the LCNN expects)."""
        if self.pre_emphasis:
            x = torch.cat([x[:, :1], x[:, 1:] - self.pre_emphasis * x[:, :-1]], dim=1)
        with torch.autocast(x.device.type, enabled=False):  # the log and DCT want float32
            c = self.lfcc(x.float())  # (B, n_lfcc, T)
            d1 = torchaudio.functional.compute_deltas(c, win_length=3)
            d2 = torchaudio.functional.compute_deltas(d1, win_length=3)
        return torch.cat([c, d1, d2], dim=1).transpose(1, 2).unsqueeze(1)


class LFCCLCNN(Detector):
    """LFCC front end + LCNN trunk + LSTM-sum pooling, 2 logits (index 1 = bona fide).

    Self-distillation segments (:meth:`segments`): the outputs of LCNN blocks 2, 3 and 4
    (``blocks.1`` .. ``blocks.3``, 4-D maps); the deepest exit is the model's own head.
    """

    def __init__(self, config: LCNNConfig) -> None:
        """Build the network described by ``config``."""
        super().__init__()
        self.config = c = config
        c1, c2, c3, c4, c5 = c.channels
        self.frontend = LFCCFrontEnd(c)
        pool = nn.MaxPool2d(2, 2)
        self.blocks = nn.Sequential(
            nn.Sequential(*_mfm_conv(1, c1, 5), pool),
            nn.Sequential(*_mfm_conv(c1, c1, 1), _bn(c1), *_mfm_conv(c1, c2, 3), pool, _bn(c2)),
            nn.Sequential(*_mfm_conv(c2, c2, 1), _bn(c2), *_mfm_conv(c2, c3, 3), pool),
            nn.Sequential(*_mfm_conv(c3, c3, 1), _bn(c3), *_mfm_conv(c3, c4, 3), _bn(c4)),
            nn.Sequential(*_mfm_conv(c4, c4, 1), _bn(c4), *_mfm_conv(c4, c5, 3), pool),
        )
        self.dropout = nn.Dropout(c.lstm_dropout)
        self.lstm = nn.LSTM(c.frame_dim, c.frame_dim // 2, num_layers=2, batch_first=True,
                            bidirectional=True)
        self.fc = nn.Linear(c.frame_dim, c.embedding_dim)
        self.embedding = nn.Identity()
        self.head = nn.Linear(c.embedding_dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, L)`` or ``(B, 1, L)`` -> logits ``(B, 2)``."""
        if x.dim() == 3 and x.shape[1] == 1:
            x = x.squeeze(1)
        if x.dim() != 2:
            raise ValueError(f"expected a waveform of shape (B, L) or (B, 1, L); "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] < self.min_length():
            raise ValueError(f"input of {x.shape[-1]} samples is too short for this model; "
                             f"it needs at least {self.min_length()}")
        maps = self.blocks(self.frontend(x))  # (B, C, T/16, F/16)
        frames = maps.permute(0, 2, 1, 3).flatten(2)  # (B, T/16, C * F/16)
        frames = self.dropout(frames)
        out, _ = self.lstm(frames)
        pooled = (out + frames).mean(dim=1)  # LSTM-sum: skip connection, mean over time
        return self.head(self.embedding(self.fc(pooled)))

    def min_length(self) -> int:
        """Shortest input (samples) the model accepts."""
        return self.config.min_length()

    def segments(self) -> tuple[str, ...]:
        """LCNN blocks 2, 3 and 4: the shallow exits of self-distillation."""
        return ("blocks.1", "blocks.2", "blocks.3")

    def compile_frontend(self, backend: str = "inductor") -> None:
        """``torch.compile`` the LCNN blocks in place (the LFCC and LSTM stay eager)."""
        for block in self.blocks:
            block.compile(backend=backend)


#: The LFCC-LCNN presets, collected by :mod:`cl_spoof.models.presets`.
PRESETS: tuple[Preset, ...] = (
    Preset("lfcc_lcnn", "LFCC front end + light CNN (max-feature-map) + LSTM-sum pooling",
           CONFIGS["lfcc_lcnn"], LFCCLCNN, order=70),
    Preset("tiny_lfcc_lcnn", "LFCC-LCNN for unit tests", CONFIGS["tiny_lfcc_lcnn"], LFCCLCNN,
           order=110),
)
