"""`inspector rank` and `inspector watch` end to end on the tiny model (subprocesses, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.library.labels import load_library, seed_library_dir
from inspector.store.decision_log import DecisionLog

pytestmark = pytest.mark.subprocess  # every test runs the CLI in a child process

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = seed_library_dir() / "generic_surfaces.yaml"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"part-{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.timeout(300)
def test_rank_prints_json_per_image_and_survives_a_bad_file(tmp_path: Path) -> None:
    good = _images(tmp_path / "in", 2)
    bad = tmp_path / "in" / "bad.png"
    bad.write_text("not an image")
    out = run(
        "rank",
        str(good[0]),
        str(bad),
        str(good[1]),
        "--model",
        "inspector-tiny",
        "--library",
        str(LIBRARY),
        "--json",
        "--top-k",
        "3",
    )
    assert out.returncode == 2, out.stderr  # a bad file makes the exit status non-zero ...
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["origin"] for line in lines] == [str(good[0]), str(good[1])]  # ... but the others ran
    assert "bad.png" in out.stderr and "Traceback" not in out.stderr
    for line in lines:
        assert [c["rank"] for c in line["candidates"]] == [1, 2, 3]
        ids = {label.id for label in load_library(LIBRARY).labels}
        assert {c["label"] for c in line["candidates"]} <= ids
        assert line["verdict"]["disposition"] in ("accept", "rework", "scrap", "review")
        assert len(line["model_id"]) == 64


@pytest.mark.timeout(300)
def test_watch_records_each_file_once_and_the_chain_verifies(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    admin_env = {"INSPECTOR_NEW_PASSWORD": "Admin-pass-1234"}
    assert run("user", "add", "admin", "--role", "admin", "--db", str(db), env=admin_env).returncode == 0
    op_env = {"INSPECTOR_PASSWORD": "Admin-pass-1234", "INSPECTOR_NEW_PASSWORD": "Oper-pass-12345"}
    made = run(
        "user",
        "add",
        "op",
        "--role",
        "operator",
        "--user",
        "admin",
        "--db",
        str(db),
        "--reason",
        "shift",
        "--no-forced-change",
        env=op_env,
    )
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "line"
    _images(folder, 3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    args = (
        "watch",
        str(folder),
        "--db",
        str(db),
        "--user",
        "op",
        "--model",
        "inspector-tiny",
        "--exit-when-idle",
        "--timeout",
        "3",
    )
    first = run(*args, env={"INSPECTOR_PASSWORD": "Oper-pass-12345"})
    assert first.returncode == 0, first.stderr
    printed = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(p["origin"] for p in printed) == ["part-0.png", "part-1.png", "part-2.png"]
    again = run(*args, env={"INSPECTOR_PASSWORD": "Oper-pass-12345"})
    assert again.returncode == 0 and again.stdout.strip() == ""  # nothing is inspected twice
    with DecisionLog.open(db, create=False) as log:
        assert sorted(r["id"] for r in log.inspections()) == sorted(p["inspection_id"] for p in printed)
        assert log.verify().ok
        assert any("broken.png" in json.dumps(e) for e in log.events())  # the bad file is an event
    verify = run("log", "verify", "--db", str(db))
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_watch_needs_a_user(tmp_path: Path) -> None:
    out = run("watch", str(tmp_path), "--db", str(tmp_path / "s.db"))
    assert out.returncode == 2 and "--user" in out.stderr


@pytest.mark.timeout(300)
def test_headless_demo_ranks_generated_parts(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text('[model]\nref = "inspector-tiny"\n')
    out = run("run", "--config", str(config), "--frames", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("verdict:") == 2 and "station ready" in out.stdout
