"""The clinical core stays framework-free: stdlib, PyYAML and its own modules only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import intake.clinical
import intake.resources

CORE = Path(intake.clinical.__file__).resolve().parent
ALLOWED_INTAKE = {"intake.clinical", "intake.constants", "intake.resources"}
ALLOWED_THIRD_PARTY = {"yaml"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_only_stdlib_yaml_and_itself() -> None:
    files = [*CORE.rglob("*.py"), Path(intake.resources.__file__)]
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "intake":
                assert any(name == a or name.startswith(a + ".") for a in ALLOWED_INTAKE), (
                    f"{path.name} imports {name}")
            else:
                assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (
                    f"{path.name} imports {name}")


def test_no_exec_or_eval_in_the_engine() -> None:
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"exec", "eval", "compile"}, path.name
