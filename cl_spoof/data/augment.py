"""Waveform augmentation of training batches: RawBoost, a codec stand-in, gain.

Written from the description of RawBoost (Tak, Kamble, Patino, Todisco, Evans,
"RawBoost: a raw data boosting and augmentation method applied to automatic speaker
verification anti-spoofing", ICASSP 2022) and its published parameter ranges
(:class:`cl_spoof.config.AugmentConfig` holds every one):

- a **random notch filter** is a cascade of ``n_bands`` Hamming-windowed FIR
  band-stop filters (centre U(min_f, max_f) Hz, width U(min_bw, max_bw) Hz,
  int(U(min_coeff, max_coeff)) taps made odd), scaled so the peak of its magnitude
  response on a 512-point grid over [0, fs/2] is ``10 ** (G / 20)``;
- (1) **LnL** linear and non-linear convolutive noise: ``sum_j f_j(x ** j)`` for
  j = 1..N_f with independent filters (G = 0 dB for j = 1, -20...-5 dB for j >= 2),
  mean removed, peak-normalised when above full scale;
- (2) **ISD** impulsive signal-dependent noise: at floor(L * beta / 100) distinct
  samples (beta ~ U(0, P) %), ``x[n] * (1 + g_sd * r)`` with r = (2u1 - 1)(2u2 - 1);
- (3) **SSI** stationary coloured additive noise: white noise through a random notch
  filter (G = 0 dB), added at SNR ~ U(10, 40) dB;
- algorithms 4 = 1->2->3, 5 = 1->2 (the published ASVspoof LA setting), 6 = 1->3,
  7 = 2->3 in series, 8 = 1 and 2 in parallel (summed, peak-normalised).

Beyond RawBoost: **band limitation** (resampled down to a random rate from
``codec_rates`` below the clip's rate and back up: the bandwidth of a telephone or
wideband codec) and a random **gain**.

Everything works on a whole batch ``(B, N)`` of clips on the device it lives on (the
training device: no CPU worker in the loading path), each clip with its own random
parameters. Filters are applied zero-phase (no delay) by FFT: their responses are
computed at once for the batch on a grid of at least 1024 points, where they are
exact (a cascade is far shorter than the grid), and interpolated linearly to the
clips' FFT grid, which replaces a full-length FFT per filter by a small one. Every
random draw comes from the ``torch.Generator`` passed in, so a batch's augmentation
depends only on that generator's seed and the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from scipy import fft as sfft
from torch import Tensor

from cl_spoof.config import AugmentConfig

__all__ = ["augment_batch", "band_limit", "cascade_responses", "isd", "lnl", "notch_responses",
           "random_gain", "rawboost", "ssi"]

#: The steps of each RawBoost algorithm id (1 LnL, 2 ISD, 3 SSI), applied in series.
_CHAINS: dict[int, tuple[int, ...]] = {0: (), 1: (1,), 2: (2,), 3: (3,), 4: (1, 2, 3),
                                       5: (1, 2), 6: (1, 3), 7: (2, 3)}


def _uniform(low: float, high: float, shape: tuple[int, ...], g: torch.Generator,
             device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=g, device=device)


def _grid_size(cfg: AugmentConfig) -> int:
    """FFT size of the coarse grid: at least 1024 (RawBoost's 512-point response)
    and longer than any cascade, so the cascade's response on it is exact."""
    longest = cfg.n_bands * (cfg.max_coeff + 1)
    return max(1024, 1 << math.ceil(math.log2(longest + 1)))


_COS: dict[tuple[int, int, str], Tensor] = {}


def _cosines(k: int, grid: int, device: torch.device) -> Tensor:
    """``(k + 1, grid // 2 + 1)`` table of ``c_m cos(2 pi m f / grid)`` (c_0 = 1, else 2):
    the zero-phase response of taps ``h[-k..k]`` (symmetric) is ``h[0..k] @ table``."""
    key = (k, grid, str(device))
    if key not in _COS:
        m = torch.arange(k + 1, dtype=torch.float64)[:, None]
        f = torch.arange(grid // 2 + 1, dtype=torch.float64)[None, :]
        table = torch.cos(2 * math.pi * m * f / grid) * torch.where(m > 0, 2.0, 1.0)
        _COS[key] = table.to(device=device, dtype=torch.float32)
    return _COS[key]


def cascade_responses(fs: int, fc: Tensor, bw: Tensor, taps: Tensor, max_taps: int,
                      grid: int) -> Tensor:
    """Zero-phase magnitude responses of cascades of Hamming-windowed FIR band-stops.

    ``fc``, ``bw`` (Hz) and ``taps`` (odd) are ``(filters, bands)``; every band-stop is
    designed as ``scipy.signal.firwin(taps, [fc - bw/2, fc + bw/2], window="hamming")``
    (unit gain at DC) and the bands of a filter are cascaded. Returns ``(filters, grid //
    2 + 1)`` responses over [0, fs/2]; ``taps`` may not exceed ``max_taps``.
    """
    nyq = fs / 2
    filters, bands = fc.shape
    fc, bw, taps = fc.reshape(-1).double(), bw.reshape(-1).double(), taps.reshape(-1)
    f1 = (fc - bw / 2).clamp(1e-3, nyq - 1e-3)
    f2 = torch.maximum((fc + bw / 2).clamp(1e-3, nyq - 1e-3), f1 + 1e-3)
    # Every band-stop at once: a Hamming-windowed ideal band-stop (pass band at DC),
    # normalised to unit DC gain; taps 0..half only (the filters are symmetric).
    half = (taps - 1) // 2
    k = (max_taps - 1) // 2 + 1  # at least the longest half, fixed: one cosine table
    m = torch.arange(k + 1, dtype=torch.float64, device=fc.device)[None, :]
    a, b = (f1 / nyq)[:, None], (f2 / nyq)[:, None]
    h = torch.sinc(m) - b * torch.sinc(b * m) + a * torch.sinc(a * m)
    window = 0.54 + 0.46 * torch.cos(math.pi * m / half.clamp(min=1)[:, None])
    h = torch.where(m <= half[:, None], h * window, 0.0)
    h = h / (2 * h.sum(dim=1, keepdim=True) - h[:, :1])  # unit DC gain of taps -half..half
    resp = h.float() @ _cosines(k, grid, fc.device)
    return resp.reshape(filters, bands, -1).prod(dim=1)


def notch_responses(fs: int, cfg: AugmentConfig, gains_db: Tensor, g: torch.Generator
                    ) -> Tensor:
    """Zero-phase magnitude responses of random notch filters on the coarse grid.

    One filter per entry of ``gains_db`` (any shape ``S``, on the target device: the
    peak gain of each filter in dB) with ``cfg.n_bands`` random band-stops; returns
    ``S + (grid // 2 + 1,)`` real responses over [0, fs/2], each scaled to its peak
    gain.
    """
    device = gains_db.device
    shape = tuple(gains_db.shape)
    size = (math.prod(shape), cfg.n_bands)
    max_f = fs / 2 if cfg.max_f is None else min(cfg.max_f, fs / 2)
    fc = _uniform(cfg.min_f, max_f, size, g, device)
    bw = _uniform(cfg.min_bw, cfg.max_bw, size, g, device)
    taps = _uniform(cfg.min_coeff, cfg.max_coeff, size, g, device).long()
    taps += 1 - taps % 2  # odd: a zero-phase (type I) filter
    resp = cascade_responses(fs, fc, bw, taps, cfg.max_coeff + 1, _grid_size(cfg))
    peak = resp.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    resp = resp * (10 ** (gains_db.reshape(-1, 1) / 20) / peak)
    return resp.reshape(*shape, -1)


def _fine(responses: Tensor, nfft: int) -> Tensor:
    """Coarse-grid responses (``(..., grid // 2 + 1)``) interpolated linearly to the
    ``rfft`` bins of an even ``nfft`` (both grids run from 0 to fs/2, end points
    included)."""
    flat = responses.reshape(1, -1, responses.shape[-1])
    fine = F.interpolate(flat, size=nfft // 2 + 1, mode="linear", align_corners=True)[0]
    return fine.reshape(*responses.shape[:-1], -1)


def _filtered(spectrum: Tensor, response: Tensor, into: Tensor | None = None) -> Tensor:
    """``spectrum * response`` (complex ``(B, bins)`` times real ``(B, bins)``), added to
    ``into`` when given; works on the real view of the spectrum, in place, so no complex
    copy of the response is made."""
    pairs = torch.view_as_real(spectrum)
    gain = response.unsqueeze(-1)
    if into is None:
        return torch.view_as_complex(pairs.mul_(gain))
    torch.view_as_real(into).addcmul_(pairs, gain)
    return into


def _padded(x: Tensor, nfft: int) -> Tensor:
    """``x`` (``(B, N)``) zero-padded to ``nfft`` samples in a new buffer, which the
    caller may overwrite (``rfft`` of it then pads nothing)."""
    buffer = x.new_zeros((x.shape[0], nfft))
    buffer[:, :x.shape[1]] = x
    return buffer


def _nfft(n: int, cfg: AugmentConfig) -> int:
    """Even FFT size for zero-phase filtering of ``n`` samples without wrap-around."""
    return 2 * sfft.next_fast_len(-(-(n + cfg.n_bands * cfg.max_coeff) // 2), real=True)


def _peak_normalised(y: Tensor) -> Tensor:
    """Each clip divided by its peak when that is above full scale."""
    return y / y.abs().amax(dim=-1, keepdim=True).clamp(min=1.0)


def lnl(x: Tensor, fs: int, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """(1) Linear and non-linear convolutive noise ``sum_j f_j(x ** j)`` of each clip."""
    b, n = x.shape
    nf = cfg.lnl_n_f
    low = torch.tensor([cfg.lnl_min_g] + [cfg.lnl_min_g - cfg.lnl_max_bias] * (nf - 1),
                       device=x.device)
    high = torch.tensor([cfg.lnl_max_g] + [cfg.lnl_max_g - cfg.lnl_min_bias] * (nf - 1),
                        device=x.device)
    gains = low + (high - low) * torch.rand((b, nf), generator=g, device=x.device)
    nfft = _nfft(n, cfg)
    coarse = notch_responses(fs, cfg, gains, g)  # (b, nf, grid bins)
    # One power at a time, computed in place in one zero-padded buffer, filtered and
    # summed in the frequency domain, so no (b, nf, bins) array is ever held.
    power = _padded(x, nfft)
    total = None
    for j in range(nf):
        if j:
            power[:, :n].mul_(x)
        total = _filtered(torch.fft.rfft(power), _fine(coarse[:, j], nfft), total)
    assert total is not None
    y = torch.fft.irfft(total, nfft)[:, :n]
    return _peak_normalised(y - y.mean(dim=1, keepdim=True))


def _distinct_positions(counts: Tensor, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per row ``i``, ``counts[i]`` distinct positions of ``0..n-1`` drawn uniformly
    without replacement: ``(positions, used)``, both ``(rows, m)``; row ``i`` uses the
    entries where ``used`` is true (exactly ``counts[i]`` of them, all distinct; the
    others may repeat them).

    Sparse (RawBoost's 10 % at most): positions are drawn with replacement and repeats
    skipped; the distinct values in draw order are a uniform draw without replacement,
    whose first ``counts[i]`` are a uniform subset of that size. Enough draws are taken
    for the largest count (6 standard deviations over); a shortfall draws again, twice
    as many. Dense: the ``counts[i]`` smallest of ``n`` uniform keys (a full sort).
    """
    rows, device = counts.shape[0], counts.device
    most = int(counts.max())
    want = most + 6 * math.sqrt(most) + 16
    if want > n / 4:  # dense: the ``most`` smallest of n uniform keys per row
        keys = torch.rand((rows, n), generator=g, device=device)
        pos = torch.topk(keys, most, dim=1, largest=False, sorted=True).indices
        return pos, torch.arange(most, device=device)[None, :] < counts[:, None]
    m = int(-n * math.log1p(-want / n)) + 1
    while True:
        draws = torch.randint(0, n, (rows, m), generator=g, device=device)
        order = torch.arange(m, device=device, dtype=torch.int32).expand(rows, m)
        first = torch.full((rows, n), m, dtype=torch.int32, device=device)
        first.scatter_reduce_(1, draws, order, reduce="amin")
        fresh = first.gather(1, draws) == order
        rank = fresh.cumsum(dim=1, dtype=torch.int32)
        if bool((rank[:, -1] >= counts).all()):
            return draws, fresh & (rank <= counts[:, None])
        m *= 2


def isd(x: Tensor, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """(2) Impulsive signal-dependent noise on each clip."""
    b, n = x.shape
    counts = (n * _uniform(0.0, cfg.isd_p, (b,), g, x.device) / 100).long()
    most = int(counts.max()) if b else 0
    if most == 0:
        return _peak_normalised(x.clone())
    pos, used = _distinct_positions(counts, n, g)
    r = (2 * torch.rand(pos.shape, generator=g, device=x.device) - 1) \
        * (2 * torch.rand(pos.shape, generator=g, device=x.device) - 1)
    # Unused entries (repeats among them) multiply by exactly 1: the product is exact.
    y = x.clone().scatter_reduce_(1, pos, 1 + cfg.isd_g_sd * r * used, "prod")
    return _peak_normalised(y)


def ssi(x: Tensor, fs: int, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """(3) Stationary signal-independent (coloured) additive noise on each clip: white
    noise as long as the clip, filtered zero-phase, added at the drawn SNR."""
    b, n = x.shape
    nfft = _nfft(n, cfg)
    white = torch.randn((b, n), generator=g, device=x.device)
    response = _fine(notch_responses(fs, cfg, torch.zeros(b, device=x.device), g), nfft)
    snr = _uniform(cfg.ssi_snr_min, cfg.ssi_snr_max, (b, 1), g, x.device)
    noise = torch.fft.irfft(_filtered(torch.fft.rfft(_padded(white, nfft)), response),
                            nfft)[:, :n]
    scale = x.norm(dim=1, keepdim=True) / noise.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return x + scale * 10 ** (-snr / 20) * noise


def rawboost(x: Tensor, fs: int, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """RawBoost algorithm ``cfg.rawboost`` on every clip of ``x`` (ids as published)."""
    if cfg.rawboost == 8:
        return _peak_normalised(lnl(x, fs, cfg, g) + isd(x, cfg, g))
    y = x
    for step in _CHAINS[cfg.rawboost]:
        y = lnl(y, fs, cfg, g) if step == 1 else isd(y, cfg, g) if step == 2 else \
            ssi(y, fs, cfg, g)
    return y


def band_limit(x: Tensor, fs: int, rate: int) -> Tensor:
    """Every clip resampled to ``rate`` and back (torchaudio): a codec's bandwidth, same
    length."""
    y = AF.resample(AF.resample(x, fs, rate), rate, fs)
    k = min(x.shape[-1], y.shape[-1])
    return F.pad(y[..., :k], (0, x.shape[-1] - k))


def random_gain(x: Tensor, low_db: float, high_db: float, g: torch.Generator) -> Tensor:
    """Each clip times a gain of U(low_db, high_db) dB, limited so its peak stays below 1."""
    gain = 10 ** (_uniform(low_db, high_db, (x.shape[0], 1), g, x.device) / 20)
    peak = x.abs().amax(dim=1, keepdim=True) * gain
    return x * torch.where(peak > 0.999, gain * 0.999 / peak.clamp(min=1e-30), gain)


def augment_batch(x: Tensor, fs: int, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """Augmented float32 copy of the batch ``x`` (``(B, N)`` clips at ``fs`` Hz).

    Each clip gets RawBoost with probability ``p_rawboost``, band limitation with
    ``p_codec`` (to a rate of ``codec_rates`` below ``fs``), gain with ``p_gain``; the
    steps run on the clips they apply to only. ``g`` is a generator on ``x``'s device.
    """
    y = x.detach().float().clone()
    b = y.shape[0]
    if b == 0:
        return y
    u = torch.rand((3, b), generator=g, device=y.device)
    rates = [r for r in cfg.codec_rates if r < fs]
    choice = torch.randint(0, max(1, len(rates)), (b,), generator=g, device=y.device)
    if cfg.rawboost and cfg.p_rawboost > 0:
        _apply(y, u[0] < cfg.p_rawboost, lambda z: rawboost(z, fs, cfg, g))
    if rates and cfg.p_codec > 0:
        for i, rate in enumerate(rates):
            _apply(y, (u[1] < cfg.p_codec) & (choice == i), lambda z, r=rate: band_limit(z, fs, r))
    if cfg.p_gain > 0:
        _apply(y, u[2] < cfg.p_gain, lambda z: random_gain(z, cfg.gain_db[0], cfg.gain_db[1], g))
    return y


def _apply(y: Tensor, chosen: Tensor, step) -> None:
    """``y[chosen] = step(y[chosen])`` in place (all rows without indexing when all are
    chosen; nothing when none is)."""
    if bool(chosen.all()):
        y.copy_(step(y))
        return
    rows = chosen.nonzero().squeeze(1)
    if rows.numel():
        y[rows] = step(y[rows])
