"""The dependency rule ui -> inspector -> models, checked at run time in a fresh interpreter.

import-linter (run by `make test`) checks the static import graph; this test catches what it
cannot see: an import done inside a function that drags a higher layer or Qt in at run time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # each check imports the packages in a fresh interpreter

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    """The package and every module under it, sub-packages included (from the files: no import here)."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.timeout(300)
def test_models_never_loads_inspector_ui_or_qt() -> None:
    loaded = _loaded_after_import(_modules("models"))
    assert not loaded & {"inspector", "ui", "PySide6", "shiboken6"}


@pytest.mark.timeout(300)
def test_inspector_never_loads_ui_or_qt() -> None:
    loaded = _loaded_after_import(_modules("inspector"))
    assert not loaded & {"ui", "PySide6", "shiboken6"}


def test_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    """The check above can fail: a module importing Qt shows up in the loaded set."""
    (tmp_path / "badpkg").mkdir()
    (tmp_path / "badpkg" / "__init__.py").write_text("import PySide6\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import badpkg; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True"
