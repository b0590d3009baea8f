"""Front ends of the ResNet-GRU: waveform ``(B, 1, L)`` -> features ``(B, C, T)``.

Each ends with BatchNorm + LeakyReLU (the first residual block skips its own
pre-activation) and an optional max-pool over time:

- ``conv``: a learnable strided Conv1d on the waveform (cl-spoof's original front end;
  built by :class:`~cl_spoof.models.resnet_gru.ResNetGRU` itself, so old checkpoints
  keep their parameter names);
- :class:`SincFrontEnd` (``sinc``): RawNet2's first layer (Tak et al., ICASSP 2021,
  after SincNet, Ravanelli & Bengio 2018): band-pass filters built from sinc
  functions with mel-spaced cut-offs, fixed (as RawNet2) or learnable, then ``|.|``;
- :class:`SpecFrontEnd` (``spec``): a fixed log power spectrum of Hann-windowed
  frames; every FFT bin a channel (``bins``: full frequency resolution, which is
  what learned real neural-vocoder artefacts in cl-spoof's measurements) or
  triangular ``linear``/``mel`` bands (torchaudio's filterbanks). Nothing learnable
  before the BatchNorm.

Frame sizes of ``spec`` are in milliseconds, so one config serves any sample rate.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF
from torch import nn

__all__ = ["SincFrontEnd", "SpecFrontEnd", "mel_band_edges"]


def mel_band_edges(n: int, sample_rate: int, f_min: float = 0.0) -> torch.Tensor:
    """``n + 1`` band edges (Hz) equally spaced on the mel scale from ``f_min`` to fs/2."""
    def mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    m = torch.linspace(mel(f_min), mel(sample_rate / 2), n + 1, dtype=torch.float64)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


class _Tail(nn.Sequential):
    """BatchNorm + LeakyReLU (+ max-pool over time when ``pool > 1``)."""

    def __init__(self, channels: int, slope: float, pool: int) -> None:
        layers: list[nn.Module] = [nn.BatchNorm1d(channels), nn.LeakyReLU(slope)]
        if pool > 1:
            layers.append(nn.MaxPool1d(pool))
        super().__init__(*layers)


class SincFrontEnd(nn.Module):
    """Band-pass sinc filterbank on the waveform (RawNet2 / SincNet), rectified.

    Filter ``i`` passes ``[f1_i, f2_i]`` Hz: ``2 f2/fs sinc(2 f2 n/fs) - 2 f1/fs
    sinc(2 f1 n/fs)`` times a Hamming window (``torch.sinc``: finite gradients at
    ``n = 0``). The initial bands tile ``[f_min, fs/2]`` with mel-spaced edges.
    ``learnable=False`` keeps them fixed (RawNet2's choice); otherwise the low
    cut-off and bandwidth of each band are trained (SincNet). The filterbank runs
    with stride ``stride``; ``|.|`` and the tail (BN, LeakyReLU, max-pool ``pool``)
    follow.
    """

    n: torch.Tensor
    window: torch.Tensor

    def __init__(self, channels: int, kernel: int, sample_rate: int, stride: int = 1,
                 pool: int = 1, learnable: bool = False, f_min: float = 30.0,
                 slope: float = 0.3) -> None:
        super().__init__()
        kernel |= 1  # odd: symmetric filters
        self.sample_rate, self.stride = sample_rate, stride
        edges = mel_band_edges(channels, sample_rate, f_min)
        low, band = edges[:-1].float(), (edges[1:] - edges[:-1]).float()
        self.low_hz = nn.Parameter(low, requires_grad=learnable)
        self.band_hz = nn.Parameter(band, requires_grad=learnable)
        half = (kernel - 1) // 2
        self.register_buffer("n", torch.arange(-half, half + 1, dtype=torch.float32))
        self.register_buffer("window", torch.hamming_window(kernel, periodic=False))
        self.tail = _Tail(channels, slope, pool)

    def filters(self) -> torch.Tensor:
        """The current ``(C, 1, kernel)`` band-pass filters."""
        nyq = self.sample_rate / 2
        f1 = self.low_hz.abs().clamp(max=nyq - 1.0)
        f2 = torch.minimum(f1 + self.band_hz.abs() + 1.0, torch.full_like(f1, nyq))
        n = self.n[None, :] / self.sample_rate

        def low_pass(f: torch.Tensor) -> torch.Tensor:
            return 2 * f[:, None] / self.sample_rate * torch.sinc(2 * f[:, None] * n)

        return ((low_pass(f2) - low_pass(f1)) * self.window).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, L)`` waveform -> ``(B, C, T)``."""
        y = nn.functional.conv1d(x, self.filters().to(x.dtype), stride=self.stride)
        return self.tail(y.abs())


class SpecFrontEnd(nn.Module):
    """Fixed log power spectrum: ``log(|STFT|^2 + 1e-8)`` of Hann frames, no centring.

    ``n_fft``-sample frames every ``hop`` samples (``T = (L - n_fft) // hop + 1``).
    ``scale="bins"`` keeps every FFT bin (``n_fft // 2 + 1`` channels); ``linear``
    or ``mel`` sum the power into ``bands`` triangular bands over [0, fs/2] first.
    Computed in float32 even under autocast.
    """

    window: torch.Tensor
    fbank: torch.Tensor

    def __init__(self, n_fft: int, hop: int, sample_rate: int, scale: str = "bins",
                 bands: int = 0, pool: int = 1, slope: float = 0.3) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        n_freqs = n_fft // 2 + 1
        if scale == "bins":
            fbank = torch.empty(0)
            self.channels = n_freqs
        elif scale in ("linear", "mel"):
            if bands < 1:
                raise ValueError(f"{scale} bands need a positive number of bands")
            if torch.empty(0).device.type == "meta":  # sizes being counted: no values
                fbank = torch.empty(n_freqs, bands)  # (torchaudio's mel bank reads one back)
            else:
                fbank = (AF.linear_fbanks(n_freqs, 0.0, sample_rate / 2, bands, sample_rate)
                         if scale == "linear" else
                         AF.melscale_fbanks(n_freqs, 0.0, sample_rate / 2, bands,
                                            sample_rate))
            self.channels = bands
        else:
            raise ValueError(f"unknown spectrum scale {scale!r}; choose bins, linear or mel")
        self.register_buffer("fbank", fbank)  # (n_freqs, bands); empty for bins
        self.tail = _Tail(self.channels, slope, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, L)`` waveform -> ``(B, C, T)``."""
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(x[:, 0].float(), self.n_fft, self.hop, window=self.window,
                              center=False, return_complex=True)
            power = spec.real.square() + spec.imag.square()  # (B, F, T)
            if self.fbank.numel():
                power = torch.einsum("bft,fc->bct", power, self.fbank)
            feats = torch.log(power + 1e-8)
        return self.tail(feats)
