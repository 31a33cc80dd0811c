"""Issue 15 items 9 and 16: readable CLI reports (library check, eval, finetune --dry-run), the data a
fine-tune needs, and figures from a small held-out set flagged with their intervals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.cli import main
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.learning.registry import ModelRegistry
from inspector.library.labels import dump_library, library_from_dict
from inspector.report.intervals import wilson_interval
from inspector.store.decision_log import DecisionLog

PASSWORDS = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw"}
COLOURS = {"ok": (200, 200, 200), "scratch": (200, 40, 40), "dent": (40, 60, 200)}
LABELS = [
    {"id": "ok", "name": "No defect", "disposition": "accept", "descriptions": ["a clean surface", "no defect"]},
    {"id": "scratch", "name": "Scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
    {"id": "dent", "name": "Dent", "disposition": "scrap", "severity": 4, "descriptions": ["a dent in the sheet"]},
]
LIBRARY = library_from_dict({"format": 1, "name": "t", "labels": LABELS})


def _image(label: str, rng: np.random.Generator) -> np.ndarray:
    colour = np.array(COLOURS[label]) + rng.integers(-25, 26, 3)
    return np.clip(colour + rng.normal(0, 8, (48, 48, 3)), 0, 255).astype(np.uint8)


def _station(path: Path, add_accounts, answers: dict[str, int]) -> Path:
    """A station whose operator confirmed `answers[label]` parts per label, rejected one image and
    typed one 'none of these'."""
    with DecisionLog.open(path) as log:
        add_accounts(log, {"op": "operator", "qa": "qa"}, passwords=PASSWORDS)
        op, qa = log.login("op", PASSWORDS["op"]), log.login("qa", PASSWORDS["qa"])
        version = log.library.import_library(LIBRARY, qa, "seed")
        rng = np.random.default_rng(0)

        def record(rgb: np.ndarray, seq: int) -> int:
            ranking = Ranking(
                tuple(Candidate(x["id"], x["name"], "rework", "d", 0.1, 1 / 3, r + 1) for r, x in enumerate(LABELS)),
                "model-x",
                version,
            )
            frame = Frame(rgb, datetime.now(UTC), "cam", seq)
            return log.record_inspection(
                InspectionResult(frame, ranking, Verdict("rework", False, False, "t"), "0" * 64), op
            )

        seq = 0
        for label, count in answers.items():
            for _ in range(count):
                seq += 1
                rank = [x["id"] for x in LABELS].index(label) + 1
                log.record_decision(Decision(record(_image(label, rng), seq), "pick", "op", label, rank), op)
        noise = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        log.record_decision(Decision(record(noise, 900), "reject_image", "op"), op)
        odd = record(_image("ok", rng), 901)
        log.record_decision(Decision(odd, "none_of_these", "op", typed_description="oil film on the sheet"), op)
    return path


def test_library_check_reports_every_problem_of_every_file_naming_labels(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    dump_library(LIBRARY, good)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "format: 1\nname: t\nlabels:\n"
        "  - {id: ok, disposition: accept, descriptions: []}\n"
        "  - {id: crack, disposition: explode, descriptions: [a crack]}\n"
        "  - {id: dent, disposition: scrap, severity: 9, descriptions: [a dent]}\n"
    )
    worse = tmp_path / "worse.yaml"
    worse.write_text("name: [not, text]\nlabels: []\n")
    code = main(["library", "check", str(bad), str(good), str(worse), str(tmp_path / "missing.yaml")])
    out, err = capsys.readouterr()
    assert code == 2
    problems = err.strip().splitlines()
    assert len(problems) == 5 and all(p.startswith("inspector: error: ") for p in problems)  # none stops the check
    assert "label 1 ('ok'): has no descriptions" in problems[0]
    assert "label 2 ('crack'): disposition 'explode'" in problems[1]
    assert "label 3 ('dent'): severity 9" in problems[2]
    assert "'name' must be a non-empty string" in problems[3] and "does not exist" in problems[4]
    assert "labels[" not in err and f"{bad}: 3 problems" in out
    # the good file: each label numbered from 1, with its name and counts
    assert re.search(r"^\s+1\s+ok\s+No defect\s+accept\s+0\s+2\s+0$", out, re.M)
    assert re.search(r"^\s+3\s+dent\s+Dent\s+scrap\s+4\s+1\s+0$", out, re.M)
    assert "checked 4 files: 1 ok, 3 with problems" in out
    assert main(["library", "check", str(good)]) == 0


def test_eval_prints_words_not_none_and_a_confusion_table(tmp_path: Path, capsys) -> None:
    lib = tmp_path / "lib.yaml"
    dump_library(LIBRARY, lib)
    rng = np.random.default_rng(1)
    for label, n in (("scratch", 4), ("dent", 3)):  # no 'ok' images: its recall and the AUROC cannot be known
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_image(label, rng)).save(tmp_path / "data" / label / f"{i}.png")
    args = ["eval", "--model", "inspector-tiny", "--library", str(lib), "--data", str(tmp_path / "data")]
    assert main([*args, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and ": None" not in out
    assert "n/a (no images of this label in --data)" in out and "No defect (ok)" in out
    assert "AUROC defect vs ok    n/a (needs both ok and defect images; the data has 0 ok of 7)" in out
    table = out[out.index("true \\ predicted") :].splitlines()
    assert table[0].split()[-4:] == ["ok", "scratch", "dent", "images"]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in table[1:4]}
    assert [rows[k][-1] for k in ("ok", "scratch", "dent")] == [0, 4, 3]  # one row per true label
    assert all(sum(v[:-1]) == v[-1] for v in rows.values())
    assert main([*args, "--device", "cpu", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["per_label_recall"]["ok"] is None and np.array(metrics["confusion"]["matrix"]).sum() == 7


def test_dry_run_is_readable_and_says_what_a_run_needs(tmp_path: Path, add_accounts, capsys, monkeypatch) -> None:
    db = _station(tmp_path / "s.db", add_accounts, {"ok": 3, "scratch": 2})
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["qa"])
    base = ["finetune", "--db", str(db), "--user", "qa"]
    assert main([*base, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "Scratch (scratch)" in out and "No defect (ok)" in out  # no raw dict; names
    assert "images rejected by the operator" in out and "'oil film on the sheet'" in out
    assert "Not ready:" in out and "more training images" in out and "held-out fraction" in out  # the rule
    assert "change the held-out fraction" not in out
    assert main([*base, "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ready = data["readiness"]
    assert not ready["ready"] and ready["needs"] == {"train": 8, "labels": 2, "heldout": 1}
    assert data["train"] + data["heldout"] == 5 and ready["per_label"]["scratch"]["name"] == "Scratch"
    assert data["excluded"]["rejected"] == 1 and data["proposals"][0]["text"] == "oil film on the sheet"
    # A real run is refused the same way, with advice the user can follow.
    assert main([*base, "--base", "inspector-tiny", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not enough confirmed decisions" in err and "confirm about" in err and "held-out fraction" not in err


@pytest.mark.training
def test_a_run_on_a_small_heldout_set_warns_and_gives_intervals(
    tmp_path: Path, add_accounts, capsys, monkeypatch
) -> None:
    import torch

    torch.set_num_threads(1)
    db = _station(tmp_path / "s.db", add_accounts, {"ok": 10, "scratch": 10, "dent": 10})
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["qa"])
    args = ["finetune", "--db", str(db), "--user", "qa", "--base", "inspector-tiny", "--device", "cpu"]
    small = ["--steps", "2", "--batch-size", "8", "--forgetting-n", "4", "--forgetting-size", "64"]
    assert main([*args, *small]) == 0
    out = capsys.readouterr().out
    assert re.search(r"held-out confirmations \(n=\d+\): WARNING: only \d+ images \(fewer than 30\)", out)
    assert "typed defects (shipped) (n=4): WARNING: only 4 images" in out
    assert re.search(r"top-1\s+\d\.\d{3} \(95 % CI \d\.\d\d–\d\.\d\d\) -> \d\.\d{3} \(95 % CI", out)
    candidate = next(m for m in ModelRegistry(DecisionLog.open(db, create=False)).list() if m.state == "candidate")
    held = candidate.figures["candidate"]["confirmations"]
    assert held["n"] < 30 and set(held["ci"]) >= {"top1", "top3", "mrr"}
    k = round(held["top1"] * held["n"])
    assert held["ci"]["top1"] == pytest.approx(list(wilson_interval(k, held["n"])))
    lo, hi = held["ci"]["top1"]
    assert f"-> {held['top1']:.3f} (95 % CI {lo:.2f}–{hi:.2f})" in out


def test_wilson_interval_known_values() -> None:
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> 0.2553-0.3662; 3 of 3 -> 0.4385-1.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(3, 3) == pytest.approx((0.4385, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)
