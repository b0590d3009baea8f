"""RegO (Chen et al., AAAI 2025, arXiv 2412.11551, "Region-based optimization in
continual learning for audio deepfake detection"): the math.

After each experience the diagonal Fisher information of every parameter entry
is measured separately on the genuine and on the fake training utterances; an
entry in the top quarter (``quantile``) of its tensor is *important* for that
class. Over the finished experiences each entry falls into one of four regions:

====== ======================= ===========================================
region important for            update of the entry
====== ======================= ===========================================
A      neither                 the plain gradient (learn the new task fast)
B      genuine only            the gradient's part parallel to a reference
C      fake only               the gradient's part orthogonal to it
D      both                    ``a · parallel + b · orthogonal``, ``a`` and ``b``
                               the batch's genuine and fake shares
====== ======================= ===========================================

An Ebbinghaus forgetting curve releases entries that only old experiences
needed back into region A: with ``T`` finished experiences, experience ``t``
(0 = oldest) weighs ``r^(T - t)``, ``r`` solving ``Σ_{i=1..T} r^i = 1``; an
entry stays protected while the weighted count of experiences that found it
important exceeds ``release`` (weights for T = 2: 0.382, 0.618; from T = 4 an
entry only the first experience needed is released at ``release = 0.1``).

Choices made here (config keys in brackets): the reference gradient is the
previous step's final gradient, as in the public code, or the mean gradient of
the last finished experience's training data at its final weights
[``rego_reference``]; genuine samples weight the parallel part and fake ones the
orthogonal part in region D, consistently with regions B and C (the public code
swaps them); the Fisher information is that of each batch's per-class mean loss,
weighted by the class's samples in the batch; masks are stored as bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["combine", "ebbinghaus_weights", "important", "pack", "region_codes", "unpack"]

REGION_A, REGION_B, REGION_C, REGION_D = 0, 1, 2, 3


def ebbinghaus_weights(tasks: int) -> list[float]:
    """Weights of ``tasks`` finished experiences, oldest first (they sum to 1)."""
    if tasks <= 0:
        return []
    if tasks == 1:
        return [1.0]

    def total(r: float) -> float:
        return sum(r**i for i in range(1, tasks + 1))

    lo, hi = 0.0, 1.0  # total() rises from 0 to tasks > 1 on [0, 1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < 1.0 else (lo, mid)
    r = 0.5 * (lo + hi)
    return [r ** (tasks - t) for t in range(tasks)]


def important(fisher: torch.Tensor, quantile: float) -> torch.Tensor:
    """Entries of ``fisher`` strictly above its ``quantile`` (per tensor), as bools."""
    flat = fisher.detach().reshape(-1)
    if flat.numel() == 0:
        return torch.zeros_like(fisher, dtype=torch.bool)
    k = min(max(math.ceil(quantile * flat.numel()), 1), flat.numel())
    threshold = flat.float().kthvalue(k).values
    return fisher > threshold


def pack(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as bits (uint8, 8 entries a byte, flattened)."""
    flat = mask.detach().reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8,
                           device=flat.device)
    return (flat.view(-1, 8) * weights).sum(dim=1).to(torch.uint8)


def unpack(bits: torch.Tensor, shape: Sequence[int] | torch.Size) -> torch.Tensor:
    """Inverse of :func:`pack` for a tensor of ``shape``."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    flat = ((bits.view(-1, 1) >> shifts) & 1).reshape(-1).bool()
    n = math.prod(shape)
    return flat[:n].reshape(tuple(shape))


def region_codes(planes: Sequence[torch.Tensor], real_any: torch.Tensor,
                 fake_any: torch.Tensor, release: float) -> torch.Tensor:
    """Region of every entry (0 = A, 1 = B, 2 = C, 3 = D) after ``len(planes)`` experiences.

    ``planes[t]``: entries important (for either class) to experience ``t``;
    ``real_any`` / ``fake_any``: important for genuine / fake in any experience.
    Entries whose Ebbinghaus-weighted importance is at most ``release`` fall to A.
    """
    code = real_any.to(torch.uint8) + 2 * fake_any.to(torch.uint8)
    if not planes:
        return torch.zeros_like(code)
    kept = torch.zeros(code.shape, dtype=torch.float64, device=code.device)
    for w, plane in zip(ebbinghaus_weights(len(planes)), planes, strict=True):
        kept += w * plane.to(torch.float64)
    return torch.where(kept > release, code, torch.zeros_like(code))


def combine(grad: torch.Tensor, reference: torch.Tensor | None, code: torch.Tensor,
            genuine_share: float) -> torch.Tensor:
    """RegO's gradient of one tensor: region by region, from ``grad`` and ``reference``.

    The parallel part is ``(⟨g, r⟩/‖r‖²) r`` over the whole tensor, the orthogonal part
    ``g`` minus it; without a (non-zero) reference the parallel part is 0.
    """
    g = grad.reshape(-1)
    if reference is None:
        par = torch.zeros_like(g)
    else:
        r = reference.reshape(-1).to(g)
        norm = torch.dot(r, r)  # no host sync: a zero reference gives a zero parallel part
        coef = torch.where(norm > 0, torch.dot(g, r) / norm.clamp_min(1e-30), 0.0)
        par = coef * r
    orth = g - par
    c = code.reshape(-1)
    mixed = genuine_share * par + (1.0 - genuine_share) * orth
    out = torch.where(c == REGION_A, g,
                      torch.where(c == REGION_B, par,
                                  torch.where(c == REGION_C, orth, mixed)))
    return out.reshape(grad.shape)
