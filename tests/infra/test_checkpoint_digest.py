"""Checkpoints are checked by content: a digest written with every checkpoint and
verified on every load, so damage anywhere is named, never silently used."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from cl_spoof.infra.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    content_digest,
    read_checkpoint,
    save_checkpoint,
)


def _payload(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"format": CHECKPOINT_FORMAT, "stage": seed % 3, "trained_on": "T1",
            "attacks": ["T1", "T2"], "config": {"seed": seed, "lr": 0.003, "name": "né"},
            "model_state": {"w": torch.randn(40, 30, generator=g),
                            "b": torch.randn(30, generator=g).double(),
                            "n": torch.tensor(seed), "half": torch.randn(8, generator=g).half(),
                            "mask": torch.rand(5, generator=g) > 0.5},
            "optimizer_state": {"state": {0: {"step": torch.tensor(3.0)}},
                                "param_groups": [{"lr": 0.003, "betas": (0.9, 0.999),
                                                  "params": [0], "foreach": None}]},
            "eer_threshold": 0.25, "pooled_eer": 12.5}


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k])
                                                                      for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(
            _equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def _data_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of the tensor data records in a torch.save zip archive."""
    raw = path.read_bytes()
    spans = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" not in info.filename:
                continue
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                           info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            spans.append((start, start + info.file_size))
    return spans


def test_a_checkpoint_reads_back_exactly_and_its_digest_covers_everything(
        tmp_path: Path) -> None:
    for seed in range(5):
        payload = _payload(seed)
        save_checkpoint(tmp_path / "c.pt", payload)
        assert _equal(read_checkpoint(tmp_path / "c.pt"), payload)
    base = content_digest(_payload(0))
    changed = [{**_payload(0), "stage": 1}, {**_payload(0), "pooled_eer": 12.500001},
               {**_payload(0), "attacks": ["T1"]}, {**_payload(0), "attacks": ["T2", "T1"]},
               {**_payload(0), "extra": None}]
    state = _payload(0)
    state["model_state"]["w"] = state["model_state"]["w"].clone()
    state["model_state"]["w"][3, 4] = torch.nextafter(state["model_state"]["w"][3, 4],
                                                      torch.tensor(9.0))
    changed.append(state)
    state = _payload(0)
    state["model_state"]["b"] = state["model_state"]["b"].float()  # same values, other dtype
    changed.append(state)
    assert len({base, *(content_digest(c) for c in changed)}) == len(changed) + 1


def test_a_flipped_bit_in_a_weight_is_a_named_error(tmp_path: Path) -> None:
    """Every single-bit flip inside the tensor data is refused with one line naming the
    file and saying it is damaged."""
    rng = random.Random(21)
    path = tmp_path / "stage_1.pt"
    save_checkpoint(path, _payload(1))
    pristine = path.read_bytes()
    spans = _data_spans(path)
    assert spans
    for _ in range(150):
        start, end = rng.choice(spans)
        offset = rng.randrange(start, end)
        raw = bytearray(pristine)
        raw[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert message.startswith(f"{path}: damaged checkpoint") and "\n" not in message


def test_damage_anywhere_is_refused_or_harmless(tmp_path: Path) -> None:
    """Flip a bit anywhere in the file (zip records, pickle, data, digest): either the
    checkpoint is refused with a named error, or what is read is exactly what was written
    (a bit no reader looks at); never a different checkpoint."""
    rng = random.Random(22)
    path = tmp_path / "c.pt"
    payload = _payload(2)
    save_checkpoint(path, payload)
    pristine = path.read_bytes()
    refused = 0
    for _ in range(300):
        raw = bytearray(pristine)
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
        try:
            got = read_checkpoint(path)
        except CheckpointError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            refused += 1
            continue
        assert _equal(got, payload)
    assert refused > 150


def test_checkpoints_written_before_digests_are_still_read(tmp_path: Path) -> None:
    payload = _payload(3)
    torch.save(payload, tmp_path / "old.pt")
    assert _equal(read_checkpoint(tmp_path / "old.pt"), payload)
