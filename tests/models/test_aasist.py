"""AASIST / AASIST-L: the authors' state-dict interface, the network's behaviour, their
pretrained weights against their own scores, and the presets in cl-spoof's pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.data.audio import fix_length, read_audio
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.models import PRESETS, Detector, build_model, count_parameters
from cl_spoof.models.aasist import (
    AASIST,
    CONFIGS,
    INPUT_SAMPLES,
    SUMMARIES,
    AASISTConfig,
    SincFilterbank,
    load_official,
    load_official_state,
)
from cl_spoof.models.exits import attach_exits
from tests.helpers.configs import tiny_config
from tests.helpers.paths import ROOT

torch.set_num_threads(1)
runner = CliRunner()

#: Names and shapes of the authors' state dicts, read once from AASIST.pth / AASIST-L.pth.
OFFICIAL_STATE = ROOT / "tests" / "assets" / "aasist_official_state.json"
#: The authors' weights, configs and reference scores (only in the development checkout).
SHARED = ROOT.parent / "shared"
OFFICIAL = SHARED / "models" / "aasist"
LA_SAMPLE = SHARED / "data" / "asvspoof2019_la_sample"
#: All 202 files (about 10 CPU-minutes for both models on 2 cores) with
#: CL_SPOOF_FULL_REFERENCE=1; by default a stratified eighth of them (about a minute).
FULL_REFERENCE = os.environ.get("CL_SPOOF_FULL_REFERENCE") == "1"
FILES = {"aasist": "AASIST.pth", "aasist_l": "AASIST-L.pth"}


def _tiny(**overrides: object) -> AASIST:
    model = build_model("tiny_aasist", **overrides)
    assert isinstance(model, AASIST)
    return model


# ------------------------------------------------------------------ the authors' interface


@pytest.mark.parametrize(("preset", "trainable", "in_file"),
                         [("aasist", 297_354, 297_866), ("aasist_l", 85_034, 85_306)])
def test_state_dict_is_the_authors(preset: str, trainable: int, in_file: int) -> None:
    """Exactly the authors' names, order and shapes, so their files load with strict=True;
    their parameter count includes the 2 x C values of every unused ``bn1``."""
    official = json.loads(OFFICIAL_STATE.read_text())[preset]
    model = build_model(preset)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == \
        list(official.items())
    assert count_parameters(model) == trainable
    inert = sum(v.numel() for k, v in model.state_dict().items()
                if ".bn1." in k and k.endswith(("weight", "bias")))
    assert trainable + inert == in_file
    assert not any(".bn1." in name for name, _ in model.named_parameters())


def test_presets_are_registered_with_their_configs() -> None:
    for name in ("aasist", "aasist_l", "tiny_aasist"):
        assert PRESETS[name].build is AASIST and PRESETS[name].config is CONFIGS[name]
        assert PRESETS[name].summary == SUMMARIES[name]
    assert CONFIGS["aasist"].spectral_nodes == 23 and CONFIGS["aasist"].kernel == 129
    assert count_parameters(build_model("tiny_aasist")) < 10_000


def test_sinc_filterbank_is_fixed_mel_spaced_band_passes() -> None:
    """The filters from their definition (numpy's sinc and Hamming window), outside the
    state dict, each one peaking in its own band."""
    bank = SincFilterbank(70, 129, 16_000)
    assert dict(bank.state_dict()) == {} and list(bank.parameters()) == []
    mel = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 71)
    edges = 700 * (10 ** (mel / 2595) - 1)
    n = np.arange(-64, 65)

    def low_pass(f: float) -> np.ndarray:
        return 2 * f / 16_000 * np.sinc(2 * f * n / 16_000)

    expected = np.stack([(low_pass(hi) - low_pass(lo)) * np.hamming(129)
                         for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    assert bank.filters.shape == (70, 1, 129) and bank.filters.dtype == torch.float32
    np.testing.assert_allclose(bank.filters[:, 0].numpy(), expected, atol=1e-7)
    response = np.abs(np.fft.rfft(bank.filters[:, 0].double().numpy(), 16_000))  # 1-Hz bins
    peaks = response.argmax(axis=1)
    centres = (edges[:-1] + edges[1:]) / 2
    assert (np.diff(peaks) >= 0).all()  # ordered from low to high bands
    assert np.abs(peaks - centres)[10:].max() < 100  # each passes its own band (above 300 Hz)
    assert response[10:, 0].max() < 0.01  # and stops DC
    assert "sinc" not in "".join(build_model("aasist").state_dict())


def test_unused_bn1_is_kept_but_never_applied() -> None:
    """The authors' quirk: the first convolution reads the block's raw input."""
    torch.manual_seed(0)
    model = _tiny().eval()
    x = torch.randn(2, 8_000)
    with torch.no_grad():
        before = model(x)
        for block in model.encoder[1:]:
            bn1 = block[0].bn1
            bn1.weight.fill_(7.0)
            bn1.bias.fill_(-3.0)
            bn1.running_mean.fill_(5.0)
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
        model.encoder[1][0].bn2.bias.fill_(1.0)  # the second BatchNorm is applied
        assert not torch.allclose(model(x), before)
    assert not hasattr(model.encoder[0][0], "bn1")  # the first block has none


# ------------------------------------------------------------------ behaviour


def test_forward_backward_reaches_every_parameter() -> None:
    """Every parameter takes a gradient (nothing idle for optimizers or data-parallel)."""
    torch.manual_seed(0)
    model = _tiny().train()
    x, y = torch.randn(4, 8_000), torch.tensor([0, 1, 0, 1])
    logits = model(x)
    assert logits.shape == (4, 2)
    nn.functional.cross_entropy(logits, y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_embedding_hook_lengths_and_eval_determinism() -> None:
    torch.manual_seed(0)
    model = _tiny().eval()
    assert isinstance(model, Detector)
    captured: list[torch.Tensor] = []
    head_inputs: list[torch.Tensor] = []
    model.embedding.register_forward_hook(lambda _m, _i, out: captured.append(out))
    model.out_layer.register_forward_pre_hook(lambda _m, inp: head_inputs.append(inp[0]))
    x = torch.randn(3, 9_000)
    with torch.no_grad():
        first = model(x)
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)  # deterministic
        torch.testing.assert_close(model(x[1:2]), first[1:2])  # independent of the batch
        assert model(torch.randn(2, 1, model.min_length())).shape == (2, 2)
    assert all(c.shape[1] == CONFIGS["tiny_aasist"].embedding_dim == 40 for c in captured)
    torch.testing.assert_close(captured[0], head_inputs[0])
    with pytest.raises(ValueError, match="too short"):
        model(torch.randn(1, model.min_length() - 1))
    model.train()
    with torch.no_grad():  # dropouts act in training only
        assert not torch.allclose(model(x), model(x))


def test_temporal_nodes_grow_with_the_input() -> None:
    model = _tiny().eval()
    seen: list[int] = []
    model.GAT_layer_T.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[1]))
    with torch.no_grad():
        for length in (model.min_length(), 20_000):
            model(torch.randn(1, length))
    # (L - 32) // 3, then six encoder pools of 3.
    assert seen == [1, (20_000 - 32) // 3 // 3 ** 6]


def test_frequency_mask_zeroes_consecutive_filters_in_training_only() -> None:
    torch.manual_seed(0)
    bank = SincFilterbank(12, 33, 16_000, mask=5)
    impulse = torch.zeros(1, 1, 33)
    impulse[0, 0, 16] = 1.0
    widths = set()
    for _ in range(60):
        out = bank.train()(impulse)[0, :, 0]
        zero = (out == 0).nonzero().flatten().tolist()
        if zero:  # one run of consecutive filters
            assert zero == list(range(zero[0], zero[0] + len(zero)))
        widths.add(len(zero))
    assert widths == {0, 1, 2, 3, 4}
    assert (bank.eval()(impulse)[0, :, 0] != 0).all()
    assert build_model("aasist").config.freq_mask == 0  # off unless asked for


def test_self_distillation_exits_on_encoder_blocks() -> None:
    torch.manual_seed(0)
    model = _tiny()
    exits = attach_exits(model)
    assert exits.segments == ("encoder.1", "encoder.3", "encoder.5")
    model.train()
    model(torch.randn(2, 8_000))
    out = exits.take()
    assert out is not None and len(out.logits) == 3
    assert all(f.shape == (2, 40) for f in out.features) and out.deep_features.shape == (2, 40)


def test_compiled_encoder_computes_the_same() -> None:
    torch.manual_seed(0)
    model = _tiny().eval()
    x = torch.randn(2, 8_000)
    with torch.no_grad():
        eager = model(x)
        model.compile_frontend(backend="eager")
        torch.testing.assert_close(model(x), eager)


def test_bad_overrides_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.overrides\.channels must be 4"):
        build_model("aasist", channels=[32, 64])
    with pytest.raises(ConfigError, match=r"model\.overrides\.pool_ratios must be 4 numbers "
                                          r"in \(0, 1\]"):
        build_model("aasist", pool_ratios=[0.5, 1.5, 0.5, 0.5])
    with pytest.raises(ConfigError, match=r"model\.overrides\.freq_mask must be at most"):
        build_model("tiny_aasist", freq_mask=20)
    with pytest.raises(ConfigError, match=r"model\.overrides\.sinc_filters"):
        build_model("aasist", sinc_filters=2)
    assert AASISTConfig(channels=[8, 8, 16, 16]).channels == (8, 8, 16, 16)  # YAML lists


# ------------------------------------------------------------------ loading state dicts


def test_loading_checks_names_and_shapes_in_one_line(tmp_path: Path) -> None:
    torch.manual_seed(0)
    light = tmp_path / "light.pth"
    torch.save(build_model("aasist_l").state_dict(), light)
    with pytest.raises(ConfigError) as err:
        load_official(build_model("aasist"), light)
    message = str(err.value)
    assert "\n" not in message and str(light) in message
    assert "of another shape (pos_S (1, 23, 24) in the file, (1, 23, 64) in the model, " \
        in message
    assert "in all)" in message and "aasist_l" in message  # the count of mismatches

    state = build_model("tiny_aasist").state_dict()
    state["extra.weight"] = state.pop("pos_S")
    odd = tmp_path / "odd.pth"
    torch.save(state, odd)
    with pytest.raises(ConfigError, match=r"1 missing \(pos_S\); 1 unexpected \(extra\.weight\)"):
        load_official(_tiny(), odd)

    with pytest.raises(DataError, match="file not found"):
        load_official_state(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch state dict"):
        load_official_state(tmp_path / "junk.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(DataError, match="expected a state dict"):
        load_official_state(tmp_path / "list.pth")

    source, target = _tiny().eval(), _tiny().eval()
    torch.save(source.state_dict(), tmp_path / "tiny.pth")
    load_official(target, tmp_path / "tiny.pth")
    x = torch.randn(2, 8_000)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


# ------------------------------------------------------------------ the authors' weights


@pytest.fixture(scope="module")
def official() -> Path:
    """The authors' files (skips where ../shared is absent)."""
    if not (OFFICIAL / "AASIST.pth").is_file():
        pytest.skip(f"the authors' AASIST weights not found at {OFFICIAL} "
                    "(only present in the project's development checkout)")
    return OFFICIAL


def test_configs_are_the_authors_model_configs(official: Path) -> None:
    for preset, conf in (("aasist", "AASIST.conf"), ("aasist_l", "AASIST-L.conf")):
        model_config = json.loads((official / conf).read_text())["model_config"]
        assert model_config["nb_samp"] == INPUT_SAMPLES
        assert AASISTConfig.from_model_config(model_config) == CONFIGS[preset]


@pytest.fixture(scope="module")
def la_clips(official: Path) -> tuple[pd.DataFrame, torch.Tensor]:
    """The reference scores and the 202 clips prepared the authors' way: the first
    64,600 samples (a shorter clip tiled from its start), no level change, float32."""
    if not LA_SAMPLE.is_dir():
        pytest.skip(f"shared ASVspoof 2019 LA sample not found at {LA_SAMPLE} "
                    "(only present in the project's development checkout)")
    ref = pd.read_csv(official / "reference_scores_la_sample.tsv", sep="\t")
    if not FULL_REFERENCE:  # every 8th bona fide and A01 file, and the A04 and A09 ones
        keep = (ref.groupby("attack", dropna=False).cumcount() % 8 == 0) \
            | ref["attack"].isin(["A04", "A09"])
        ref = ref[keep].reset_index(drop=True)
    waves = [fix_length(read_audio(LA_SAMPLE / f), INPUT_SAMPLES) for f in ref["file"]]
    return ref, torch.from_numpy(np.stack(waves))


@pytest.mark.parametrize("preset", ["aasist", "aasist_l"])
def test_official_weights_reproduce_the_authors_scores(
        official: Path, la_clips: tuple[pd.DataFrame, torch.Tensor], preset: str) -> None:
    ref, waves = la_clips
    model = build_model(preset).eval()
    load_official(model, official / FILES[preset])  # strict=True
    with torch.no_grad():  # a few clips at a time: 64,600-sample maps are large on a CPU
        scores = torch.cat([model(waves[i:i + 4])[:, 1] for i in range(0, len(waves), 4)])
    column = "score_" + FILES[preset].removesuffix(".pth")
    assert np.abs(scores.numpy() - ref[column].to_numpy()).max() <= 1e-3
    bona = scores.numpy()[(ref["label"] == "bonafide").to_numpy()]
    a01 = scores.numpy()[(ref["attack"] == "A01").to_numpy()]
    assert len(bona) == len(a01) == (100 if FULL_REFERENCE else 13)
    assert compute_eer(bona, a01)[0] <= 0.01


# ------------------------------------------------------------------ in the pipeline


def test_cli_run_dfwf_and_score_with_tiny_aasist(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path, model={"preset": "tiny_aasist"})
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--strategy", "dfwf", "--out", str(out)])
    assert res.exit_code == 0, res.output
    matrix = pd.read_csv(out / "eer_matrix.csv")
    assert len(matrix) == 2 and matrix[["T1", "T2"]].notna().all().all()
    ckpt = torch.load(out / "checkpoints" / "stage_1.pt", weights_only=True)
    assert "dfwf_teacher" in ckpt["strategy_state"]
    assert "encoder.1.0.bn1.running_var" in ckpt["model_state"]
    scored = runner.invoke(app, ["score", str(out / "checkpoints" / "stage_1.pt"),
                                 str(tiny_corpus), "--out", str(tmp_path / "scores.txt")])
    assert scored.exit_code == 0, scored.output
    assert len((tmp_path / "scores.txt").read_text().splitlines()) >= 30
