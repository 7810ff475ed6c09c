"""Module boundaries: imports run one way (pipelines -> scenegan), the package has no import
cycles, and loading a MODEL does not load the training stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scenegan"
# The only modules that may run pipelines: the command and its demos.
ENTRY_POINTS = {"scenegan.cli", "scenegan.demo", "scenegan.photo_demo"}
OUTSIDE = ("pipelines", "apache_beam")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """Every module `name` imports, at the top or inside a function (absolute names)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # `from package import module` imports the module
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    return {name: imported(name) & set(MODULES) for name in MODULES}


def test_only_the_entry_points_import_pipelines_or_beam():
    assert "scenegan.training.loop" in MODULES and "scenegan.cli" in MODULES
    offenders = {
        name: sorted(m for m in imported(name) if m.split(".")[0] in OUTSIDE)
        for name in MODULES
        if name not in ENTRY_POINTS
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_package_has_no_import_cycles():
    graph = package_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_import_graph_sees_imports_of_every_form():
    assert "scenegan.storage" in imported("scenegan.artifact")
    assert "scenegan.training.checkpoint" in imported("scenegan.training.export")


LOAD_A_MODEL = """
import sys, tempfile
import torch
from scenegan import artifact
from scenegan.models import build_model
from pipelines.handler import SceneModelHandler

path = tempfile.mkdtemp() + "/model"
generator = build_model("resnet", {"base_channels": 4, "num_blocks": 1})
artifact.save_model(path, generator, task="unpaired", image_size=16, source_domain="a",
                    target_domain="b", training={}, metrics={})
stylizer = SceneModelHandler(path).load_model()
print(" ".join(sorted(m for m in sys.modules if m.startswith("scenegan.training"))) or "-")
import pipelines.stylize  # the launcher side: resolves registry pointers, never trains
print(" ".join(sorted(m for m in sys.modules if m.startswith("scenegan.training."))))
"""


def test_a_worker_that_loads_a_model_does_not_import_the_training_stack():
    result = subprocess.run(
        [sys.executable, "-c", LOAD_A_MODEL], capture_output=True, text=True, cwd=ROOT, check=True
    )
    worker, launcher = result.stdout.splitlines()
    assert worker == "-"
    assert not {"scenegan.training.loop", "scenegan.training.tasks"} & set(launcher.split())
