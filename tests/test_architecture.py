"""The package's layers (docs/architecture.md): no import circle, stages and the in-memory core import nothing
from one another, and the modules a command line needs before its options are checked import no torch."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "wav2vec2_pipeline"
STAGES = {"preprocess", "inference", "postprocess"}
"""Stages 1, 3 and 4 (stage 2's tracing lives in export.py beside the model files every stage reads)."""
CORE = "core"
DRIVERS = {"distributed"}
"""Drivers run the stages (the Ray driver plans as preprocess and compile.py do); nothing else imports them."""
LIGHT = ("registry", "options", "device", "errors", "shards", "layout_args", "cluster")
"""What the scripts import before they parse their options: --help answers without torch."""


def imports(module: Path) -> set[str]:
    """The package modules `module` imports, at the top or inside a function (TYPE_CHECKING-only ones aside)."""
    found = set()
    tree = ast.parse(module.read_text())
    guards = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    type_only = {id(n) for guard in guards for n in ast.walk(guard)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wav2vec2_pipeline"):
            if node.module == "wav2vec2_pipeline":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
    return found & {p.stem for p in PACKAGE.glob("*.py")}


def graph() -> dict[str, set[str]]:
    return {p.stem: imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_the_package_has_no_import_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import circle: {' -> '.join([*path, module])}"
        if module in done:
            return
        for other in sorted(edges[module]):
            visit(other, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_stages_and_the_core_import_only_shared_modules() -> None:
    edges = graph()
    for module in sorted(STAGES | {CORE}):
        crossing = edges[module] & (STAGES | {CORE} | DRIVERS)
        assert not crossing, f"{module} imports {sorted(crossing)}: move what they share into a shared module"
    for module, imported in edges.items():
        assert module in DRIVERS or not imported & DRIVERS, f"{module} imports a driver"


def test_what_a_command_line_needs_first_imports_no_torch() -> None:
    check = "assert 'torch' not in sys.modules and 'ray' not in sys.modules, sorted(sys.modules)"
    code = "; ".join([*(f"import wav2vec2_pipeline.{m}" for m in LIGHT), "import sys", check])
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
