"""A small station database for the line tests: users, a library, and recordable results."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inspector.frame.records import (
    Candidate,
    Frame,
    InspectionResult,
    PartTag,
    Ranking,
    Verdict,
)
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
            {"id": "dent", "disposition": "scrap", "severity": 4, "descriptions": ["a dent in the sheet"]},
        ],
    }
)


def make_log(path: Path) -> tuple[DecisionLog, Session, Session, int]:
    """(log, operator, qa, library version)."""
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", "admin-secret-1")
    admin = log.login("admin", "admin-secret-1")
    log.users.add_user("op", "operator", "operator-secret", admin, temporary=False)
    log.users.add_user("qa", "qa", "qa-engineer-pw", admin, temporary=False)
    op, qa = log.login("op", "operator-secret"), log.login("qa", "qa-engineer-pw")
    return log, op, qa, log.library.import_library(LIBRARY, qa, "initial library")


def make_result(version: int, seq: int = 0, part: PartTag | None = None, top: str = "scratch") -> InspectionResult:
    labels = [top] + [x for x in ("ok", "scratch", "dent") if x != top]
    dispositions = {"ok": "accept", "scratch": "rework", "dent": "scrap"}
    candidates = tuple(
        Candidate(lab, lab.title(), dispositions[lab], f"desc of {lab}", s, p, i + 1)
        for i, (lab, s, p) in enumerate(zip(labels, (0.31, 0.22, -0.05), (0.7, 0.2, 0.1)))
    )
    rgb = np.full((6, 5, 3), seq % 250, np.uint8)
    frame = Frame(rgb, datetime.now(UTC), "cam-1", seq, origin=f"f{seq}.png", part=part)
    return InspectionResult(
        frame,
        Ranking(candidates, "model-abc", version),
        Verdict(dispositions[top], False, False, "top-1"),
        f"{seq:064x}",
        {"encode": 12.5},
    )


def record(log: DecisionLog, user: Session, version: int, seq: int, part: PartTag | None = None) -> InspectionResult:
    result = make_result(version, seq, part)
    return replace(result, inspection_id=log.record_inspection(result, user, store_image_file=False))


def chain_seqs(log: DecisionLog, tables: tuple[str, ...] = ("inspections", "decisions")) -> list[int]:
    marks = ",".join("?" * len(tables))
    return [r[0] for r in log.sdb.conn.execute(f"SELECT seq FROM chain WHERE tbl IN ({marks}) ORDER BY seq", tables)]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m inspector.cli ARGS` from the repository root, offline."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args],
        check=False,
        cwd=Path(__file__).resolve().parents[1],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_images(folder: Path, n: int) -> None:
    """n random 48x64 PNG files."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"part-{i}.png")
