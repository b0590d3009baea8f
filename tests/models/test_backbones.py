"""Res-TSSDNet, Inc-TSSDNet and LFCC-LCNN, and `cl-spoof run --strategy dfwf` on every family."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torchaudio
from torch import nn
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.errors import ConfigError
from cl_spoof.models import PRESETS, Detector, build_model, count_parameters
from cl_spoof.models.lfcc_lcnn import LFCCLCNN
from cl_spoof.models.tssdnet import TSSDNet
from tests.helpers.configs import tiny_config
from tests.helpers.encoders import tiny_ssl_overrides

torch.set_num_threads(1)
runner = CliRunner()

NEW = ["res_tssdnet", "inc_tssdnet", "lfcc_lcnn", "tiny_res_tssdnet", "tiny_inc_tssdnet",
       "tiny_lfcc_lcnn"]


def test_paper_sizes() -> None:
    # The parameter counts of the papers' networks (TSSDNet: its code's comments and table).
    assert count_parameters(build_model("res_tssdnet")) == 348_530
    assert count_parameters(build_model("inc_tssdnet")) == 92_658
    lcnn = build_model("lfcc_lcnn")
    assert isinstance(lcnn, LFCCLCNN)
    assert sum(p.numel() for p in lcnn.blocks.parameters()) == 157_504  # the LCNN trunk
    for name in ("tiny_res_tssdnet", "tiny_inc_tssdnet", "tiny_lfcc_lcnn"):
        assert count_parameters(build_model(name)) < 10_000


def test_inception_branches_and_residual_shortcut() -> None:
    inc = build_model("inc_tssdnet")
    convs = [m for m in inc.stages[0][0].branches.modules() if isinstance(m, nn.Conv1d)]
    assert [c.dilation[0] for c in convs] == [1, 2, 4, 8]
    assert [c.out_channels for c in convs] == [8, 8, 8, 8]
    res = build_model("res_tssdnet")
    block = res.stages[3]  # the last stage has no pool after it
    assert isinstance(block.shortcut, nn.Conv1d) and block.shortcut.kernel_size == (1,)
    assert block.shortcut.in_channels == block.shortcut.out_channels == 128  # always a conv


@pytest.mark.parametrize("name", NEW)
def test_any_length_from_the_minimum_and_the_embedding_hook(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert isinstance(model, Detector)
    captured: list[torch.Tensor] = []
    head_inputs: list[torch.Tensor] = []
    model.embedding.register_forward_hook(lambda _m, _i, out: captured.append(out))
    model.head.register_forward_pre_hook(lambda _m, inp: head_inputs.append(inp[0]))
    with torch.no_grad():
        for length in (model.min_length(), 5_001):
            logits = model(torch.randn(2, length))
            assert type(logits) is torch.Tensor and logits.shape == (2, 2)
        model(torch.randn(2, 1, 4_000))  # (B, 1, L) too
    assert len(captured) == 3 and all(c.dim() == 2 for c in captured)
    torch.testing.assert_close(captured[-1], head_inputs[-1])
    with pytest.raises(ValueError, match="too short"):
        model(torch.randn(1, model.min_length() - 1))


def test_tssdnet_pools_globally_by_max() -> None:
    # The paper's global max pool: the embedding depends on the largest activation only,
    # wherever it is, so the model scores a 6-s clip the same as a copy of it twice as long
    # made of the clip and silence, up to the edge effects of the convolutions.
    model = build_model("tiny_res_tssdnet").eval()
    assert isinstance(model, TSSDNet) and model.min_length() == 4 ** 4


def test_lfcc_front_end_is_torchaudio_lfcc_with_deltas() -> None:
    model = build_model("lfcc_lcnn")
    assert isinstance(model, LFCCLCNN)
    x = torch.randn(2, 16_000)
    feats = model.frontend(x)
    assert feats.shape == (2, 1, 1 + 16_000 // 160, 60)
    emphasised = torch.cat([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], dim=1)
    lfcc = torchaudio.transforms.LFCC(
        sample_rate=16_000, n_filter=20, n_lfcc=20, f_max=8000.0, log_lf=True,
        speckwargs={"n_fft": 512, "win_length": 320, "hop_length": 160,
                    "window_fn": torch.hamming_window, "center": True,
                    "pad_mode": "constant"})(emphasised)
    static = feats[:, 0, :, :20].transpose(1, 2)
    torch.testing.assert_close(static, lfcc)
    delta = feats[:, 0, :, 20:40].transpose(1, 2)
    torch.testing.assert_close(delta[:, :, 5], (lfcc[:, :, 6] - lfcc[:, :, 4]) / 2)


def test_lcnn_max_feature_map_halves_channels() -> None:
    model = build_model("lfcc_lcnn")
    shapes: list[tuple[int, ...]] = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        model.eval()(torch.randn(1, 16_000))
    # Channels after MFM 32, 48, 64, 32, 32; time and the 60 features halved four times.
    assert [s[1] for s in shapes] == [32, 48, 64, 32, 32]
    assert shapes[-1][2:] == (101 // 16, 60 // 16)


@pytest.mark.parametrize("name", ["tiny_res_tssdnet", "tiny_inc_tssdnet", "tiny_lfcc_lcnn"])
def test_adam_steps_reduce_loss_on_separable_batch(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **({"lstm_dropout": 0.0} if "lcnn" in name else {}))
    n, length = 8, 2_400
    y = torch.arange(n) % 2
    t = torch.arange(length) / 16_000
    freq = torch.where(y == 1, 1_000.0, 5_000.0)[:, None]
    x = torch.sin(2 * torch.pi * freq * t) + 0.1 * torch.randn(n, length)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_presets_and_overrides_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown model preset 'tssdnet' \(model\.preset\); "
                                          r"valid presets: .*res_tssdnet.*lfcc_lcnn.*ssl"):
        build_model("tssdnet")
    with pytest.raises(ConfigError, match=r"\['dilation'\] in model\.overrides"):
        build_model("inc_tssdnet", dilation=[1, 2])
    with pytest.raises(ConfigError, match=r"model\.overrides\.channels: Inc-TSSDNet"):
        build_model("inc_tssdnet", channels=[30, 64, 128, 128])
    with pytest.raises(ConfigError, match=r"model\.overrides\.kind"):
        build_model("res_tssdnet", kind="dense")
    with pytest.raises(ConfigError, match=r"model\.overrides\.channels must be 5"):
        build_model("lfcc_lcnn", channels=[32, 48])
    with pytest.raises(ConfigError, match=r"model\.overrides\.f_max"):
        build_model("lfcc_lcnn", f_max=12_000.0)
    assert set(NEW) <= set(PRESETS)


# ------------------------------------------------------------------ every backbone runs


@pytest.mark.parametrize("preset", ["tiny", "tiny+stats", "tiny_res_tssdnet",
                                    "tiny_inc_tssdnet", "tiny_lfcc_lcnn", "ssl"])
def test_cli_run_dfwf_with_every_backbone(tiny_corpus: Path, tmp_path: Path,
                                          preset: str) -> None:
    model: dict = {"preset": preset}
    if preset == "tiny+stats":  # the ResNet-GRU's statistics path widens the embedding
        model = {"preset": "tiny", "overrides": {"stats_dim": 4}}
    if preset == "ssl":
        model["overrides"] = tiny_ssl_overrides(tmp_path, trainable_layers=1)
    cfg = tiny_config(tiny_corpus, tmp_path, model=model)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--strategy", "dfwf", "--out", str(out)])
    assert res.exit_code == 0, res.output
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert len(matrix) == 2 and matrix[["T1", "T2"]].notna().all().all()
    ckpt = torch.load(out / "checkpoints" / "stage_2.pt", weights_only=True)
    assert "dfwf_teacher" in ckpt["strategy_state"]
    if preset == "ssl":  # the frozen encoder is the user's file: not copied into checkpoints
        assert not any(k.startswith("encoder.feature_extractor") for k in ckpt["model_state"])
        assert not any(k.startswith("encoder.feature_extractor")
                       for k in ckpt["strategy_state"]["dfwf_teacher"])
    scored = runner.invoke(app, ["score", str(out / "checkpoints" / "stage_2.pt"),
                                 str(tiny_corpus), "--out", str(tmp_path / "scores.txt")])
    assert scored.exit_code == 0, scored.output
    assert len((tmp_path / "scores.txt").read_text().splitlines()) >= 30


@pytest.mark.parametrize(("preset", "strategy"), [("tiny_lfcc_lcnn", "rawm"), ("ssl", "rwm"),
                                                  ("tiny_res_tssdnet", "rego")])
def test_field_baselines_with_other_backbones(tiny_corpus: Path, tmp_path: Path, preset: str,
                                              strategy: str) -> None:
    """RAWM / RWM / RegO act on the new backbones too: their state after the first
    experience covers layers of that backbone (an SSL encoder: only its trainable top)."""
    model: dict = {"preset": preset}
    if preset == "ssl":
        model["overrides"] = tiny_ssl_overrides(tmp_path, trainable_layers=1)
    cfg = tiny_config(tiny_corpus, tmp_path, model=model)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--strategy", strategy, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out / "eer_matrix.csv")[["T1", "T2"]].notna().all().all()
    state = torch.load(out / "checkpoints" / "stage_2.pt",
                       weights_only=True)["strategy_state"][strategy]
    if strategy == "rego":
        names = set(state["planes"])
        assert any(n.startswith("stages.") for n in names), sorted(names)[:5]
    else:
        corr = state["space"]["corr"]
        names = set(corr)
        assert names and all(torch.isfinite(v).all() for v in corr.values())
        if preset == "ssl":  # frozen encoder layers take no room in the state
            assert any(n.startswith("encoder.encoder.transformer.layers.3.") for n in names)
            assert not any("feature_extractor" in n or "transformer.layers.0." in n
                           for n in names), sorted(names)


def test_lfcc_front_end_follows_the_sample_rate() -> None:
    """data.sample_rate reaches the LFCC filterbank; f_max may then reach its Nyquist."""
    model = build_model("lfcc_lcnn", sample_rate=24_000, f_max=12_000.0)
    assert isinstance(model, LFCCLCNN)
    assert model.frontend.lfcc.sample_rate == 24_000
    assert model(torch.randn(2, 24_000)).shape == (2, 2)
    with pytest.raises(ConfigError, match=r"model\.overrides\.f_max must be in \(0, 12000\]"):
        build_model("lfcc_lcnn", sample_rate=24_000, f_max=13_000.0)
