"""The package's shape: no import cycles, layers import downwards only, distributed code
in one place, light imports where promised, registries and docs that match the code."""

from __future__ import annotations

import ast
import pkgutil
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PACKAGE = ROOT / "cl_spoof"

# Lower layers never import higher ones (same layer: allowed). See docs/architecture.md.
LAYERS = {
    "cl_spoof.errors": 0, "cl_spoof.labels": 0,
    "cl_spoof.config": 1, "cl_spoof.infra": 1,
    "cl_spoof.data": 2, "cl_spoof.demo": 2,
    "cl_spoof.benchmark": 3, "cl_spoof.models": 3, "cl_spoof.metrics": 3,
    "cl_spoof.strategies": 4, "cl_spoof.training": 4,
    "cl_spoof.rundir": 5,
    "cl_spoof.reporting": 6,
    "cl_spoof.workflows": 7,
    "cl_spoof.cli": 8, "cl_spoof.__main__": 8,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in ``path`` (also inside functions), except under
    ``if TYPE_CHECKING``; ``from a import b`` counts ``a.b`` when that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and _is_type_checking(node) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    found.add(f"{node.module}.{alias.name}")
    return found


GRAPH = {name: {m for m in _imports(path) if m in MODULES} for name, path in MODULES.items()}


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a.b.c``, ``a.b``: importing a module runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(len(parts), 1, -1)]


def _layer(name: str) -> int:
    for prefix, layer in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{name} belongs to no layer: add its package to LAYERS and to "
                         "docs/architecture.md")


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        if name != "cl_spoof":
            _layer(name)


def test_no_import_cycles() -> None:
    edges = {name: set() for name in MODULES}
    for name, targets in GRAPH.items():
        for target in targets:
            for module in _with_parents(target):
                if module in MODULES and not name.startswith(module + ".") and module != name:
                    edges[name].add(module)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            cycle = visiting[visiting.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        visiting.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for name in sorted(edges):
        visit(name)


def test_layers_import_downwards_only() -> None:
    bad = [f"{name} -> {target}" for name, targets in GRAPH.items() if name != "cl_spoof"
           for target in targets if target != "cl_spoof"
           and _layer(target) > _layer(name)]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_config_is_the_ground_floor() -> None:
    """The config imports only the errors, the labels and ``infra.names``: no strategy,
    model, metric, data, benchmark, report or workflow, however lazily."""
    allowed = {"cl_spoof.errors", "cl_spoof.labels", "cl_spoof.infra", "cl_spoof.infra.names"}
    found = {target for name, targets in GRAPH.items() if name.startswith("cl_spoof.config")
             for target in targets if not target.startswith("cl_spoof.config")}
    assert found <= allowed, sorted(found - allowed)


def test_process_groups_are_reached_only_through_infra() -> None:
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("cl_spoof.infra"):
            continue
        imports = _imports(path) - {"torch.distributed.elastic.multiprocessing.errors"}
        if any(m.startswith("torch.distributed") for m in imports) \
                or "cl_spoof.infra.distributed" in imports:
            offenders.append(name)
    assert offenders == []


def _fresh_import(code: str) -> set[str]:
    """Modules loaded by ``code`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join("
                          "sorted(sys.modules)))"], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=120)
    return set(out.stdout.split())


def _registry_modules() -> set[str]:
    """What importing the registry loads of ours: it, the specs' types and the method
    modules it discovers (each light: heavy parts load inside builders)."""
    from cl_spoof.strategies import methods

    return {"cl_spoof", "cl_spoof.errors", "cl_spoof.labels", "cl_spoof.strategies",
            "cl_spoof.strategies.registry", "cl_spoof.strategies.spec",
            "cl_spoof.strategies.state", "cl_spoof.strategies.methods",
            *(f"cl_spoof.strategies.methods.{m.name}"
              for m in pkgutil.iter_modules(methods.__path__))}


def test_registry_imports_light() -> None:
    loaded = _fresh_import("import cl_spoof.strategies")
    assert not any(m.split(".")[0] in ("torch", "avalanche", "numpy") for m in loaded)
    ours = {m for m in loaded if m.startswith("cl_spoof")}
    assert ours <= _registry_modules(), sorted(ours - _registry_modules())


def test_dfwf_plugin_imports_light() -> None:
    loaded = _fresh_import("from cl_spoof.strategies import DFWFPlugin")
    assert "pandas" not in loaded and "soundfile" not in loaded
    ours = {m for m in loaded if m.startswith("cl_spoof")}
    allowed = _registry_modules() | {"cl_spoof.strategies.methods.dfwf.plugin",
                                     "cl_spoof.strategies.methods.dfwf.regularization"}
    assert "cl_spoof.strategies.methods.dfwf.plugin" in ours
    assert ours <= allowed, sorted(ours - allowed)


def test_config_and_reports_do_not_import_avalanche() -> None:
    loaded = _fresh_import("import cl_spoof.config, cl_spoof.reporting")
    assert not any(m.startswith("avalanche") for m in loaded)
    assert "cl_spoof.workflows" not in loaded
    assert "torch" not in loaded  # the metric registry the reports read is light too


def test_run_folders_are_read_without_models_strategies_or_avalanche() -> None:
    loaded = _fresh_import("import cl_spoof.rundir")
    assert not any(m.startswith("avalanche") for m in loaded)
    ours = {m for m in loaded if m.startswith("cl_spoof.")}
    assert not {m for m in ours if m.split(".")[1] in (
        "models", "strategies", "benchmark", "reporting", "workflows")}, sorted(ours)


def test_readme_strategy_table_is_the_registry() -> None:
    from cl_spoof.strategies.registry import markdown_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- strategies:begin -->\n(.*?)<!-- strategies:end -->", readme, re.S)
    assert block, "README lacks the <!-- strategies:begin/end --> block"
    assert block.group(1) == markdown_table(), (
        "README strategy table differs from the registry; paste this:\n" + markdown_table())


def test_cli_help_lists_every_strategy() -> None:
    from typer.testing import CliRunner

    from cl_spoof.cli import app
    from cl_spoof.strategies.registry import STRATEGIES

    for command in ("run", "compare"):
        text = re.sub(r"\s+", " ", CliRunner().invoke(app, [command, "--help"],
                                                      env={"COLUMNS": "200"}).output)
        text = re.sub(r"[│╭╮╰╯─]", "", text)
        for name in STRATEGIES:
            assert re.search(rf"\b{re.escape(name)}\b", text), (command, name)


def test_architecture_doc_matches_the_tree() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"cl_spoof/[\w/]+(?:\.py)?", doc))
    for entry in named:
        assert (ROOT / entry).exists(), f"docs/architecture.md names {entry}, which is gone"
    top = {p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", "."))
           and (p.is_dir() and (p / "__init__.py").exists() or p.suffix == ".py")}
    for item in sorted(top):
        path = f"cl_spoof/{item}" if item.endswith(".py") else f"cl_spoof/{item}/"
        assert path.rstrip("/") in {n.rstrip("/") for n in named}, \
            f"docs/architecture.md does not mention {path}"
    for entry in set(re.findall(r"tests/[\w/]+(?:\.py)?", doc)):
        assert (ROOT / entry).exists(), f"docs/architecture.md names {entry}, which is gone"


#: Test folders about the product as a whole rather than one part of ``cl_spoof/``.
WHOLE_PRODUCT_TESTS = {"architecture", "guarantees", "benchmarks", "docs"}


def test_tests_mirror_the_package() -> None:
    """``tests/<part>/`` tests ``cl_spoof/<part>``; shared code is in ``tests/helpers/``
    (fixtures in ``tests/conftest.py``), so no test module imports another."""
    tests = ROOT / "tests"
    parts = {p.stem for p in PACKAGE.iterdir() if not p.name.startswith(("_", "."))
             and (p.is_dir() and (p / "__init__.py").exists() or p.suffix == ".py")}
    folders = {p.name for p in tests.iterdir() if p.is_dir()
               and p.name not in ("__pycache__", "assets")}  # assets: data files of tests
    assert folders - parts - WHOLE_PRODUCT_TESTS == {"helpers"}, sorted(folders)
    assert not list(tests.glob("test_*.py")), "a test module outside the package folders"
    for folder in folders:
        assert (tests / folder / "__init__.py").is_file(), f"tests/{folder} is no package"
    for path in tests.rglob("test_*.py"):
        imported = {m for m in _imports(path) if m == "tests" or m.startswith("tests.")}
        assert all(m.startswith("tests.helpers") for m in imported), (path.name, imported)


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_dfwf_example_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "dfwf_in_your_avalanche_script.py"),
                   run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("after experience 0")
    assert "active=False" in out[0] and all("active=True" in line for line in out[1:])
    psa = [float(re.search(r"psa=([\d.]+)", line).group(1)) for line in out[1:]]
    assert all(p > 0 for p in psa)
