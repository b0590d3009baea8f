"""Every strategy name runs; compare gives every strategy the same start."""

from __future__ import annotations

import json
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from avalanche.core import SupervisedPlugin

from cl_spoof.config import load_config, with_overrides
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.strategies import STRATEGIES, check_strategy_name
from cl_spoof.workflows.compare import parse_strategies, run_compare
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import resolve
from tests.helpers.configs import tiny_config

# Non-default hyper-parameters, so the test sees that each one reaches the method.
SETTINGS = {"memory_size": 8, "gem_patterns_per_exp": 4, "gem_memory_strength": 0.25,
            "agem_patterns_per_exp": 4, "agem_sample_size": 4, "lwf_alpha": 0.5,
            "lwf_temperature": 3.0, "ewc_lambda": 7.0, "ewc_decay": 0.25, "si_lambda": 0.5,
            "kd_weight": 0.5, "kd_temperature": 3.0, "psa_weight": 2.0, "psa_distance": "l2",
            "owm_layers": ["head", "gru"], "owm_alpha": 0.01, "owm_target": "gradient",
            "owm_beta_max": 5.0, "rawm_beta": "ratio", "rwm_compact_class": "spoof",
            "rego_layers": ["head"], "rego_quantile": 0.5, "rego_release": 0.2,
            "rego_reference": "old_task"}

# name -> (strategy class, {plugin class: {attribute: expected value}})
EXPECTED = {
    "naive": ("Naive", {}),
    "joint": ("Naive", {}),
    "cumulative": ("Cumulative", {}),
    "lwf": ("LwF", {"LwFPlugin": {"lwf.alpha": 0.5, "lwf.temperature": 3.0}}),
    "ewc": ("EWC", {"EWCPlugin": {"ewc_lambda": 7.0, "decay_factor": 0.25, "mode": "online"}}),
    "si": ("SynapticIntelligence", {"SynapticIntelligencePlugin": {"si_lambda": [0.5]}}),
    "replay": ("Replay", {"ReplayPlugin": {"mem_size": 8}}),
    "gem": ("GEM", {"GEMPlugin": {"patterns_per_experience": 4, "memory_strength": 0.25}}),
    "agem": ("AGEM", {"AGEMPlugin": {"patterns_per_experience": 4, "sample_size": 4}}),
    "dfwf": ("DFWF", {"DFWFPlugin": {"dfwf.kd_weight": 0.5, "dfwf.temperature": 3.0,
                                     "dfwf.psa_weight": 2.0, "dfwf.distance": "l2"}}),
    "dfwf+replay": ("Replay", {"ReplayPlugin": {"mem_size": 8},
                               "DFWFPlugin": {"dfwf.kd_weight": 0.5, "dfwf.psa_weight": 2.0}}),
    "rawm": ("RAWM", {"RAWMPlugin": {"patterns": ("head", "gru"), "alpha": 0.01,
                                     "target": "gradient", "beta_max": 5.0,
                                     "beta_rule": "ratio"}}),
    "rwm": ("RWM", {"RWMPlugin": {"patterns": ("head", "gru"), "compact_class": "spoof",
                                  "compact_is_bonafide": False}}),
    "rego": ("RegO", {"RegOPlugin": {"patterns": ("head",), "quantile": 0.5, "release": 0.2,
                                     "reference_kind": "old_task"}}),
}


class Inspect(SupervisedPlugin):
    """Records the strategy class and its plugins when training starts."""

    def __init__(self) -> None:
        super().__init__()
        self.strategy: object = None

    def before_training_exp(self, strategy, **kwargs) -> None:
        self.strategy = strategy


def _attr(obj: object, dotted: str) -> object:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_registered_strategy_is_checked_here() -> None:
    assert set(EXPECTED) == set(STRATEGIES)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_builds_its_method_and_runs(name: str, tiny_corpus: Path,
                                                   tmp_path: Path) -> None:
    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)),
                         strategy={"name": name, **SETTINGS})
    probe = Inspect()
    summary = run_experiment(cfg, tmp_path / "run", extra_plugins=[probe])
    cls, plugins = EXPECTED[name]
    assert type(probe.strategy).__name__ == cls
    found = {type(p).__name__: p for p in probe.strategy.plugins}
    for plugin, attributes in plugins.items():
        assert plugin in found, (name, sorted(found))
        for attribute, value in attributes.items():
            assert _attr(found[plugin], attribute) == value, (name, plugin, attribute)
    method_plugins = {"LwFPlugin", "EWCPlugin", "SynapticIntelligencePlugin", "ReplayPlugin",
                      "GEMPlugin", "AGEMPlugin", "DFWFPlugin", "RAWMPlugin", "RWMPlugin",
                      "RegOPlugin"}
    assert method_plugins & set(found) == set(plugins)  # no other method sneaks in
    matrix = pd.read_csv(tmp_path / "run" / "eer_matrix.csv")
    assert len(matrix) == (1 if name == "joint" else 2)
    assert matrix[["T1", "T2"]].notna().all().all()
    assert summary.metrics["strategy"] == name


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: naive, joint, cumulative"):
        check_strategy_name("finetune")
    with pytest.raises(CLSpoofError, match="twice"):
        parse_strategies("naive,naive")


def test_compare_same_start_per_seed_and_table(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tiny_corpus, tmp_path))
    out = tmp_path / "cmp"
    table = run_compare(cfg, ["naive", "dfwf", "joint"], [0, 1], out)
    assert table.strategy.tolist() == ["naive", "dfwf", "joint"]
    assert (table.seeds == 2).all()
    for seed in (0, 1):
        naive = pd.read_csv(out / "naive" / f"seed{seed}" / "eer_matrix.csv")
        dfwf = pd.read_csv(out / "dfwf" / f"seed{seed}" / "eer_matrix.csv")
        # DFWF adds nothing in the first experience: same initial weights and data
        # order per seed make the first stage identical to naive's.
        pd.testing.assert_series_equal(naive.iloc[0], dfwf.iloc[0], check_names=False)
    csv = pd.read_csv(out / "comparison.csv")
    assert set(csv.strategy) == {"naive", "dfwf", "joint"}
    md = (out / "comparison.md").read_text()
    assert all(s in md for s in ("naive", "dfwf", "joint", "±"))
    assert json.loads((out / "compare.json").read_text())["seeds"] == [0, 1]
    with pytest.raises(CLSpoofError, match="exists"):
        run_compare(cfg, ["naive"], [0], out)


ORDER = ["naive", "joint", "cumulative", "lwf", "ewc", "si", "replay", "gem", "agem", "dfwf",
         "dfwf+replay", "rawm", "rwm", "rego"]
TOY_METHODS = Path(__file__).resolve().parents[1] / "helpers" / "toy_methods"


def test_registry_order_is_modules_by_name_then_their_specs() -> None:
    """baselines, dfwf, owm, rego: the order of --help and the README table."""
    assert list(STRATEGIES) == ORDER


@pytest.fixture
def extra_methods(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], list[str]]]:
    """Put a folder of method modules next to ``cl_spoof/strategies/methods/``; returns
    the strategy names the registry then finds, and registers the new ones for the test."""
    from cl_spoof.strategies import methods, registry

    added: list[str] = []

    def add(folder: Path) -> list[str]:
        monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(folder)])
        added.extend(f"{methods.__name__}.{m.name}" for m in pkgutil.iter_modules([str(folder)]))
        found = registry.discover_specs()  # what importing the registry now collects
        for name, spec in found.items():
            if name not in registry.STRATEGIES:
                monkeypatch.setitem(registry.STRATEGIES, name, spec)
        return list(found)

    yield add
    for module in added:  # forget the folder's modules (and their submodules)
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            del sys.modules[name]
        vars(methods).pop(module.rpartition(".")[2], None)


def test_a_method_module_must_declare_its_specs(tmp_path: Path, extra_methods) -> None:
    (tmp_path / "nospecs.py").write_text("SPEC = ()\n")
    with pytest.raises(AssertionError, match="nospecs declares no SPECS"):
        extra_methods(tmp_path)


def test_a_new_strategy_is_one_method_package(tiny_corpus: Path, tmp_path: Path,
                                              extra_methods) -> None:
    """Builder, hyper-parameter (config key, default, check) and resumable state: one
    package under methods/, found without touching the registry."""
    import torch

    from cl_spoof.config import config_from_dict

    assert extra_methods(TOY_METHODS) == ["anchor", *ORDER]  # modules by name

    with pytest.raises(ConfigError, match="strategy.anchor_weight must be at least 1"):
        resolve(config_from_dict({"strategy": {"name": "anchor", "anchor_weight": 0.5}}))
    cfg = with_overrides(load_config(tiny_config(tiny_corpus, tmp_path)),
                         strategy={"name": "anchor", "anchor_weight": 3.0}, train={"epochs": 2})
    full = run_experiment(cfg, tmp_path / "full")
    saved = torch.load(tmp_path / "full" / "checkpoints" / "stage_1.pt", weights_only=True)
    assert set(saved["strategy_state"]) == {"anchor"}
    # Resume after stage 1: the anchor comes back from the checkpoint, results match.
    import shutil

    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    (part / "checkpoints" / "stage_2.pt").unlink()
    status = json.loads((part / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (part / "run.json").write_text(json.dumps(status))
    resumed = run_experiment(cfg, part, resume=True)
    pd.testing.assert_frame_equal(resumed.matrix, full.matrix, atol=1e-3, rtol=0)
    a = torch.load(part / "checkpoints" / "stage_2.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "full" / "checkpoints" / "stage_2.pt",
                   weights_only=True)["model_state"]
    for name, value in b.items():
        torch.testing.assert_close(a[name], value, atol=1e-5, rtol=0, msg=name)
