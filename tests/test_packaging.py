"""The package installs: a wheel built from the source holds every sub-package and the data files the
code opens, and its entry points work from a fresh venv where the project comes only from the wheel.

The fresh venv gets no copies of torch & co. (too slow, and offline): a .pth file puts the shared
venv's site-packages after its own, so third-party packages resolve there. A .pth path line adds a
folder to sys.path without running the .pth files inside it, so the shared venv's editable install
of this project stays inactive and `inspector`, `models`, `ui` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.library.labels import load_library, seed_library_dir

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the source (an in-tree build would leave build/ in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("inspector", "models", "ui", "tests", "bench"):  # tests/bench: to prove they stay out
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    (src / "inspector" / "__pycache__").mkdir()  # a stray cache folder must not become a package
    out = work / "dist"
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    wheels = list(out.glob("rankclip_inspector-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_every_subpackage_and_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("inspector", "models", "ui"):
        for init in (ROOT / package).rglob("__init__.py"):
            rel = init.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} missing from the wheel"
    data = [
        *(ROOT / "models" / "configs").glob("*.json"),
        *(ROOT / "models" / "weights").iterdir(),
        ROOT / "models" / "MODEL_CARD.md",
        *(ROOT / "inspector" / "library" / "seeds").iterdir(),
    ]
    assert len(data) > 5
    for path in data:
        assert path.relative_to(ROOT).as_posix() in names
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"inspector", "models", "ui"}
    assert not any("__pycache__" in name for name in names)


def test_installed_wheel_runs_help_and_rank_outside_the_repo(wheel, tmp_path):
    venv = tmp_path / "fresh"
    proc = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    py = venv / "bin" / "python"
    proc = _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    fresh_site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip()
    )
    (fresh_site / "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    proc = _run(
        [
            str(py),
            "-c",
            "import json, inspector, models, ui; print(json.dumps([inspector.__file__, models.__file__, ui.__file__]))",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for path in json.loads(proc.stdout):
        assert Path(path).is_relative_to(venv), path

    cli = venv / "bin" / "inspector"
    proc = _run([str(cli), "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rank" in proc.stdout
    assert (venv / "bin" / "inspector-station").exists()
    assert "rank" in _run([str(py), "-m", "inspector.cli", "--help"], cwd=tmp_path).stdout

    image = tmp_path / "part.png"
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(image)
    # The station's defaults: the shipped trained weights and the seed library, both package data.
    proc = _run([str(cli), "rank", str(image), "--device", "cpu", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[0])
    assert result["origin"] == str(image)
    assert result["verdict"]["disposition"] in ("accept", "rework", "scrap", "review")
    seed_ids = {label.id for label in load_library(seed_library_dir() / "generic_surfaces.yaml").labels}
    assert {c["label"] for c in result["candidates"]} == seed_ids
