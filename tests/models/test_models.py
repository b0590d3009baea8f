"""Tests for the ResNet + GRU detector in ``cl_spoof.models``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.models import (
    PRESETS,
    ResNetGRU,
    ResNetGRUConfig,
    build_model,
    count_parameters,
)

torch.set_num_threads(1)

FULL = 64_600
# The ResNet-GRU family (tests of the other families: test_backbones.py, test_ssl.py).
FAST_PRESETS = [name for name in PRESETS
                if PRESETS[name].build is ResNetGRU and name != "rawnet2_reference"]


def _gru_frames(model: ResNetGRU, x: torch.Tensor) -> int:
    """Number of frames the GRU actually receives, observed with a hook."""
    seen: list[int] = []
    handle = model.gru.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[1]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", FAST_PRESETS)
def test_output_and_embedding_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    length = FULL if name == "base" else 8_000
    x = torch.randn(2, length)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
        logits2, emb2 = model.forward_with_embedding(x.unsqueeze(1))
    assert type(logits) is torch.Tensor
    assert logits.shape == (2, 2) and logits.dtype == torch.float32
    assert emb.shape == (2, model.config.embedding_dim)
    torch.testing.assert_close(logits, logits2)
    torch.testing.assert_close(emb, emb2)


@pytest.mark.parametrize("name", ["small", "base"])
def test_gru_frames_at_full_length(name: str) -> None:
    config = PRESETS[name].config
    assert 50 <= config.num_frames(FULL) <= 150
    assert config.num_frames(32_000) >= 20  # 2-s demo clips
    model = build_model(name)
    assert _gru_frames(model, torch.randn(1, 1, FULL)) == config.num_frames(FULL)


def test_num_frames_and_min_length_match_the_network() -> None:
    model = build_model("tiny").eval()
    config = model.config
    for length in (config.min_length(), 3_001, 5_000):
        assert _gru_frames(model, torch.randn(1, length)) == config.num_frames(length) >= 1
    assert config.num_frames(config.min_length() - 1) == 0
    with pytest.raises(ValueError, match="too short"):
        model(torch.randn(1, config.min_length() - 1))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(1, 2, 5_000))


def test_parameter_counts() -> None:
    counts = {name: count_parameters(build_model(name)) for name in FAST_PRESETS}
    assert 1_000 <= counts["tiny"] <= 10_000
    assert 30_000 <= counts["small"] <= 100_000
    assert 300_000 <= counts["base"] <= 1_000_000
    ref = sum(p.numel() for p in build_model("rawnet2_reference").gru.parameters())
    assert ref > 16_000_000  # 3-layer GRU of 1024 units dominates the ~17.6M yardstick


def test_embedding_hook_captures_embed_output() -> None:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    captured: list[torch.Tensor] = []
    model.embedding.register_forward_hook(lambda _m, _i, out: captured.append(out))
    x = torch.randn(3, 4_000)
    with torch.no_grad():
        model(x)
        expected = model.embed(x)
    assert len(captured) == 2
    torch.testing.assert_close(captured[0], expected)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_adam_steps_reduce_loss_on_separable_batch(pooling: str) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", pooling=pooling)
    n, length = 16, 3_000
    y = torch.arange(n) % 2
    t = torch.arange(length) / 16_000
    # bona fide: 1 kHz tone; spoof: 5 kHz tone (plus noise)
    freq = torch.where(y == 1, 1_000.0, 5_000.0)[:, None]
    x = torch.sin(2 * torch.pi * freq * t) + 0.1 * torch.randn(n, length)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_overrides_and_config_objects() -> None:
    model = build_model("tiny", gru_hidden=12, fms=False, fc_dim=10)
    assert model.config.gru_hidden == 12 and model.config.embedding_dim == 10
    assert model.embed(torch.randn(2, 4_000)).shape == (2, 10)
    config = ResNetGRUConfig(block_channels=[8, 8], block_pools=[2, 2], gru_hidden=8)
    assert config.block_channels == (8, 8)
    assert ResNetGRU(config).config is config
    assert all(PRESETS[n].build is ResNetGRU
               for n in ("tiny", "small", "base", "rawnet2_reference"))


@pytest.mark.parametrize("fc_dim", [0, 10])
def test_statistics_path_sees_the_front_ends_mean_and_std(fc_dim: int) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", stats_dim=6, fc_dim=fc_dim).eval()
    assert model.config.embedding_dim == (fc_dim or 16 + 6)
    fronts: list[torch.Tensor] = []
    stats_in: list[torch.Tensor] = []
    model.front.register_forward_hook(lambda _m, _i, out: fronts.append(out))
    assert model.stats is not None
    model.stats.register_forward_hook(lambda _m, inp, _o: stats_in.append(inp[0]))
    x = torch.randn(3, 4_000)
    with torch.no_grad():
        emb = model.embed(x)
    assert emb.shape == (3, model.config.embedding_dim)
    front = fronts[0]  # (B, C, T)
    torch.testing.assert_close(stats_in[0], torch.cat([front.mean(-1), front.std(-1)], 1))
    # the statistics reach the logits: a loss on them trains the projection
    model.train()
    model(x).sum().backward()
    assert model.stats.weight.grad is not None and model.stats.weight.grad.abs().sum() > 0


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="tiny.*small.*base"):
        build_model("huge")
    with pytest.raises(ConfigError, match="gru_size"):
        build_model("tiny", gru_size=3)
    with pytest.raises(ConfigError, match="same length"):
        ResNetGRUConfig(block_channels=(8, 8), block_pools=(2,))
    with pytest.raises(ConfigError, match="pooling"):
        ResNetGRUConfig(pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="front_stride"):
        ResNetGRUConfig(front_stride=0)
    with pytest.raises(ConfigError, match="model.stats_dim"):
        ResNetGRUConfig(stats_dim=-1)
