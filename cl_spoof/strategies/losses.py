"""Loss terms of DFWF ("Detecting Fake Without Forgetting", Ma et al., Interspeech 2021).

DFWF trains on a new attack with ``L = L_ce + kd_weight * L_kd + psa_weight * L_psa``:

- :func:`kd_loss`: knowledge distillation from the model of the previous
  experience (the teacher) on every sample, so old decisions are kept;
- :func:`psa_loss`: positive sample alignment, a distance between the
  student's and the teacher's embeddings of the *bona fide* samples only,
  since genuine speech is assumed to look alike in every experience while
  spoofs legitimately change.

Both are pure functions of tensors (no model, no Avalanche) so they can be
tested alone; :mod:`cl_spoof.strategies.dfwf` wires them into training. The
teacher side is always detached: it is a target, never trained.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["DISTANCES", "kd_loss", "psa_loss"]

Distance = Literal["cosine", "l2"]

#: Embedding distances accepted by :func:`psa_loss`.
DISTANCES: tuple[str, ...] = ("cosine", "l2")


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Distillation loss ``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, batch mean.

    Both inputs are logits ``(B, C)``. The KL divergence of the temperature-softened
    distributions is multiplied by ``T²`` (Hinton et al., 2015): softening divides the
    gradients by about ``T²``, so the scaling keeps the term's size comparable across
    temperatures and against the cross-entropy. 0 when the logits are equal (up to a
    constant per row), positive otherwise; 0 for an empty batch. Gradients flow to the
    student only.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            "student and teacher logits must both have shape (B, C); got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum()  # exact 0, still part of the graph
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (temperature**2)


def psa_loss(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    is_bonafide: torch.Tensor,
    distance: Distance = "cosine",
) -> torch.Tensor:
    """Positive sample alignment: mean distance of bona fide embeddings to the teacher's.

    ``student_emb`` and ``teacher_emb`` have the same shape ``(B, ...)``; each sample is
    flattened, so intermediate feature maps ``(B, C, T)`` work as well as utterance
    embeddings. Only the rows where ``is_bonafide`` (a bool tensor ``(B,)``) is true count.
    ``distance="cosine"``: mean of ``1 - cos(student, teacher)`` (in [0, 2], scale-free);
    ``"l2"``: mean over samples of the squared Euclidean distance (grows with the
    flattened size). A batch without bona fide gives an exact 0 that is still connected
    to the student's graph (``backward`` works, the gradient is 0, never NaN).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {distance!r}")
    if student_emb.shape != teacher_emb.shape or student_emb.dim() < 1:
        raise ValueError(
            "student and teacher embeddings must have the same shape (B, ...); got "
            f"{tuple(student_emb.shape)} and {tuple(teacher_emb.shape)}"
        )
    mask = is_bonafide.to(device=student_emb.device, dtype=torch.bool).reshape(-1)
    if mask.shape[0] != student_emb.shape[0]:
        raise ValueError(
            f"is_bonafide has {mask.shape[0]} entries for a batch of {student_emb.shape[0]}"
        )
    student = student_emb.reshape(student_emb.shape[0], -1)[mask]
    teacher = teacher_emb.detach().reshape(teacher_emb.shape[0], -1)[mask]
    if student.shape[0] == 0:
        # Sum of an empty selection: exactly 0, part of the graph, gradient 0 everywhere.
        return student.sum()
    if distance == "cosine":
        cos = F.cosine_similarity(student, teacher, dim=1, eps=1e-8)
        return (1.0 - cos).clamp_min(0.0).mean()  # rounding can give 1 - cos = -1e-7
    return (student - teacher).pow(2).sum(dim=1).mean()
