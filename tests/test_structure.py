"""The house rules of the layout: data flows ingest -> vision -> rules -> evidence -> review_ui, the
CLI package only wires, no module imports itself round a circle, and the install puts nothing
but ``nonsite`` into site-packages."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "vision", "rules", "evidence", "review_ui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["nonsite", *parts] if parts[0] in STAGES else parts)


def _imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (lazy imports inside functions too)."""
    files = [p for folder in (*STAGES, "nonsite") for p in (REPO / folder).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and modules[target].name != "__init__.py":
                    found.add(target)
        graph[name] = found
    return graph


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else "cli"


def test_stages_import_only_from_upstream_and_never_from_the_cli_package():
    order = {stage: rank for rank, stage in enumerate(STAGES)}
    wrong = []
    for module, targets in _imports().items():
        if _stage(module) == "cli":
            continue
        for target in targets:
            if _stage(target) == "cli" or order[_stage(target)] > order[_stage(module)]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    graph = _imports()
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert len(graph) > 60
    assert not circles, "\n".join(circles)


def test_the_wheel_installs_only_the_nonsite_package(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    for folder in (*STAGES, "nonsite"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nonsite-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"nonsite"}
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("nonsite/evidence/manifest.py", "nonsite/evidence/migrations/versions/0001_first_release.py",
                     "nonsite/review_ui/templates/pack.html", "nonsite/scenes/parking_lot.yaml", "nonsite/rules/engine.py"):
        assert expected in names
