"""A model too large to allocate is a config error naming the ``model.overrides`` key that
made it so, found before any weight is allocated, for every detector family; a failing
allocation is an out-of-memory line (exit 2), never an unexpected error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.errors import ConfigError
from cl_spoof.models.base import module_values
from cl_spoof.models.presets import PRESETS, build_model, count_values
from tests.helpers.encoders import TINY_PARAMS

runner = CliRunner()

#: One override per family (and per kind of size) that would need far more memory than
#: any machine has.
HUGE: list[tuple[str, dict[str, Any], str]] = [
    ("tiny", {"gru_hidden": 100_000_000}, "gru_hidden"),
    ("tiny", {"front_channels": 10**9}, "front_channels"),
    ("tiny", {"block_channels": [8, 10**8]}, "block_channels"),
    ("tiny", {"fc_dim": 10**12}, "fc_dim"),
    ("tiny", {"gru_layers": 100_000_000}, "gru_layers"),
    ("tiny", {"block_channels": [4] * 100_000, "block_pools": [1] * 100_000},
     "block_channels"),
    ("tiny", {"frontend": "spec", "spec_win_ms": 1e9}, "spec_win_ms"),
    ("tiny", {"front_kernel": 10**12}, "front_kernel"),
    ("tiny_res_tssdnet", {"stem_channels": 10**9}, "stem_channels"),
    ("tiny_res_tssdnet", {"fc_dims": [10**9, 10**9]}, "fc_dims"),
    ("tiny_inc_tssdnet", {"channels": [4 * 10**8] * 3}, "channels"),
    ("tiny_res_tssdnet", {"channels": [4] * 100_000}, "channels"),
    ("tiny_lfcc_lcnn", {"embedding_dim": 10**10}, "embedding_dim"),
    ("tiny_lfcc_lcnn", {"channels": [10**7, 8, 8, 4, 4]}, "channels"),
    ("tiny_lfcc_lcnn", {"n_fft": 10**11, "win_length": 320}, "n_fft"),
    ("tiny_aasist", {"gat_dims": [10**6, 10**6]}, "gat_dims"),
    ("tiny_aasist", {"channels": [4, 4, 8, 10**9]}, "channels"),
    ("tiny_aasist", {"sinc_filters": 10**10}, "sinc_filters"),
    ("ssl", {"architecture": "custom_wav2vec2", "checkpoint": "/nonexistent.pt",
             "encoder_params": {**TINY_PARAMS, "encoder_embed_dim": 10**6,
                                "encoder_ff_interm_features": 10**6}}, "encoder_params"),
    ("ssl", {"architecture": "custom_wav2vec2", "checkpoint": "/nonexistent.pt",
             "encoder_params": {**TINY_PARAMS, "encoder_num_layers": 10**8}}, "encoder_params"),
]


def _families() -> set[str]:
    return {type(p.config).__module__ for p in PRESETS.values()}


def test_every_family_is_covered() -> None:
    covered = {type(PRESETS[preset].config).__module__ for preset, _, _ in HUGE}
    assert covered == _families()


@pytest.mark.parametrize(("preset", "overrides", "key"), HUGE)
def test_a_huge_model_is_named_before_allocation(preset: str, overrides: dict[str, Any],
                                                 key: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"model\.(overrides\.)?{key}\b") as info:
        build_model(preset, **overrides)
    assert time.perf_counter() - start < 20
    assert "\n" not in str(info.value)


#: Small values of the size fields of every family, drawn at random below.
SMALL: dict[str, dict[str, list[Any]]] = {
    "tiny": {"frontend": ["conv", "sinc", "spec"], "spec_scale": ["bins", "linear", "mel"],
             "front_channels": [4, 8], "front_kernel": [16, 33], "gru_hidden": [4, 9],
             "gru_layers": [1, 2], "fc_dim": [0, 5], "stats_dim": [0, 3],
             "block_channels": [[4, 8], [6, 6, 8]], "pooling": ["last", "mean"],
             "spec_win_ms": [16.0, 32.0], "sinc_learnable": [False, True]},
    "tiny_res_tssdnet": {"stem_channels": [4, 6], "channels": [[4, 8], [8, 8, 8]],
                         "fc_dims": [[8, 4], [6]], "pool": [2, 4]},
    "tiny_inc_tssdnet": {"stem_channels": [4, 6], "channels": [[8, 8], [16, 8, 8]],
                         "dilations": [[1, 2, 4, 8], [1, 2]]},
    "tiny_lfcc_lcnn": {"n_lfcc": [8, 16], "n_filter": [16, 20], "embedding_dim": [4, 8],
                       "channels": [[4, 6, 8, 4, 4], [2, 4, 4, 2, 2]]},
    "tiny_aasist": {"sinc_filters": [9, 12], "sinc_kernel": [16, 33],
                    "channels": [[4, 4, 8, 8], [2, 4, 4, 6]], "gat_dims": [[8, 8], [6, 4]]},
}


def test_counting_gives_the_built_model_exactly() -> None:
    """Over random small configs of every family: the count a refusal rests on is the
    size of the model that is then built (so no model that fits is refused)."""
    import random

    rng = random.Random(0)
    checked = 0
    for preset, fields in SMALL.items():
        for _ in range(12):
            overrides = {k: rng.choice(v) for k, v in fields.items() if rng.random() < 0.6}
            try:
                model = build_model(preset, **overrides)
            except ConfigError:
                continue
            assert count_values(PRESETS[preset], overrides) == module_values(model), overrides
            checked += 1
    assert checked >= 30


def test_sizes_are_counted_without_touching_the_random_state() -> None:
    torch.manual_seed(3)
    want = build_model("tiny").state_dict()
    torch.manual_seed(3)
    build_model("tiny", gru_hidden=40)  # counted first, then built
    torch.manual_seed(3)
    got = build_model("tiny").state_dict()
    for name, value in want.items():
        torch.testing.assert_close(got[name], value)


def test_the_cli_names_the_key_and_exits_2(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = {"data": {"source": str(tiny_corpus), "num_samples": 4000, "test_split": "dev"},
           "model": {"preset": "tiny", "overrides": {"gru_hidden": 100_000_000}},
           "train": {"epochs": 1, "batch_size": 8, "threads": 1}, "seed": 0}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "model.overrides.gru_hidden" in line and "unexpected" not in line
    assert not (tmp_path / "out").exists()


def test_a_failed_allocation_is_an_out_of_memory_line(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    import cl_spoof.workflows.run as run_module

    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 1200000000000 bytes.")

    monkeypatch.setattr(run_module, "run_experiment", no_memory)
    res = runner.invoke(app, ["run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert "out of memory" in line and "unexpected" not in line
