"""End to end on the tiny model: a hand-built decision log of clearly separable images (one colour
per label) fine-tunes into a candidate that beats the base on its own held-out split; cancel, resume,
the wall-time cap, the CLI, and the torchrun job over an export bundle (two gloo processes)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.errors import DataError
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.learning.loop import FinetuneConfig, PairDataset, register_checkpoint, run_finetune, training_set_from
from inspector.learning.registry import ModelRegistry, PromotionRefused, promotion_problems
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import DecisionLog

pytestmark = pytest.mark.training  # the station fine-tunes the tiny model

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw"}
COLOURS = {"ok": (200, 200, 200), "scratch": (200, 40, 40), "dent": (40, 60, 200)}
LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface", "no defect visible"]},
            {
                "id": "scratch",
                "disposition": "rework",
                "severity": 2,
                "descriptions": ["a thin scratch", "a scratch line"],
            },
            {
                "id": "dent",
                "disposition": "scrap",
                "severity": 4,
                "descriptions": ["a dent in the sheet", "a dented panel"],
            },
        ],
    }
)
PER_LABEL = 24
# Small, fast settings; the images are separable, so 40 steps are plenty for three labels.
FAST = FinetuneConfig(
    steps=40,
    batch_size=16,
    lr=5e-3,
    warmup_steps=2,
    heldout_fraction=0.25,
    forgetting_n=8,
    forgetting_size=64,
    max_wall_seconds=120,
)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the CI machine is shared; tiny models gain nothing from more


def _image(label: str, rng: np.random.Generator) -> np.ndarray:
    colour = np.array(COLOURS[label]) + rng.integers(-25, 26, 3)
    return np.clip(colour + rng.normal(0, 8, (48, 48, 3)), 0, 255).astype(np.uint8)


def _record(log: DecisionLog, op, version: int, rgb: np.ndarray, order: tuple[str, ...], seq: int) -> int:
    ranking = Ranking(
        tuple(
            Candidate(lab, lab, "rework", LIBRARY.label(lab).descriptions[0], 0.1, 1 / 3, r + 1)
            for r, lab in enumerate(order)
        ),
        "model-x",
        version,
    )
    frame = Frame(rgb, datetime.now(UTC), "cam", seq)
    return log.record_inspection(InspectionResult(frame, ranking, Verdict("rework", False, False, "t"), "0" * 64), op)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, add_accounts) -> Path:
    """A station whose operator confirmed or picked PER_LABEL coloured parts per label, rejected two
    images and typed one new description. The model's rankings rotate, so two thirds are picks."""
    path = tmp_path_factory.mktemp("finetune") / "station.db"
    with DecisionLog.open(path) as log:
        add_accounts(log, {"op": "operator", "qa": "qa"}, passwords=PASSWORDS)
        op, qa = log.login("op", PASSWORDS["op"]), log.login("qa", PASSWORDS["qa"])
        version = log.library.import_library(LIBRARY, qa, "seed")
        rng = np.random.default_rng(0)
        labels = list(COLOURS)
        for k in range(PER_LABEL * len(labels)):
            truth, order = labels[k % 3], tuple(labels[(k // 3 + j) % 3] for j in range(3))
            inspection = _record(log, op, version, _image(truth, rng), order, k)
            rank = order.index(truth) + 1
            log.record_decision(Decision(inspection, "confirm" if rank == 1 else "pick", "op", truth, rank), op)
        for k in range(2):
            noise = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            rejected = _record(log, op, version, noise, tuple(labels), 100 + k)
            log.record_decision(Decision(rejected, "reject_image", "op"), op)
        odd = _record(log, op, version, _image("ok", rng), tuple(labels), 200)
        log.record_decision(Decision(odd, "none_of_these", "op", typed_description="oil film on the sheet"), op)
    return path


@pytest.fixture()
def station(template: Path, tmp_path: Path):
    for suffix in ("", ".key", ".anchor"):
        shutil.copy2(f"{template}{suffix}", tmp_path / f"station.db{suffix}")
    shutil.copytree(template.parent / "images", tmp_path / "images")
    with DecisionLog.open(tmp_path / "station.db", create=False) as log:
        yield log, log.login("qa", PASSWORDS["qa"])


def test_finetune_improves_on_its_own_heldout_split_and_registers_a_candidate(station) -> None:
    from models.evaluate import evaluate
    from models.factory import load_model

    log, qa = station
    result = run_finetune(log, None, FAST, user=qa, default_ref="inspector-tiny")
    assert result.status == "candidate" and result.outcome.completed
    base, cand = result.outcome.figures["baseline"], result.outcome.figures["candidate"]
    assert cand["confirmations"]["n"] == len(result.training_set.heldout) > 0
    assert cand["confirmations"]["top1"] > base["confirmations"]["top1"]
    assert cand["confirmations"]["mrr"] > base["confirmations"]["mrr"]
    # Three solid colours are separable: a loop that learned gets (nearly) all of them.
    assert cand["confirmations"]["top1"] >= 0.9
    assert cand["typed_defects"]["n"] == FAST.forgetting_n
    assert [p.text for p in result.proposals] == ["oil film on the sheet"]
    assert result.training_set.excluded["rejected"] == 2
    registry = ModelRegistry(log)
    assert registry.active().checkpoint == "inspector-tiny"  # the model in use, registered for rollback
    assert registry.get(result.candidate.model_id).state == "candidate"
    assert result.candidate.data_hash == result.training_set.data_hash
    # The checkpoint is the evaluated model: it loads under its id and scores the same.
    bundle = load_model(result.candidate.checkpoint, device="cpu")
    assert bundle.model_id == result.candidate.model_id
    held = result.training_set.heldout
    images = [PairDataset(held).load_image(i) for i in range(len(held))]
    again = evaluate(bundle, images, [p.label_id for p in held], LIBRARY.label_texts(), ok_labels=["ok"])
    assert again["top1"] == cand["confirmations"]["top1"]
    problems = promotion_problems(result.candidate.figures, 0.02)
    if problems:  # the forgetting set may veto: either way the rule and the registry agree
        with pytest.raises(PromotionRefused, match="not promoted"):
            registry.promote(result.candidate.model_id, qa, "learned the plant's parts")
    else:
        assert registry.promote(result.candidate.model_id, qa, "learned the plant's parts").state == "active"
    assert log.verify().ok


def test_wrongly_ranked_pairs_weigh_more_and_a_swapped_image_is_refused(station, tmp_path: Path) -> None:
    log, _ = station
    pairs = training_set_from(log, heldout_fraction=0.0).train
    hard = [p for p in pairs if p.outranked]
    assert 0 < len(hard) < len(pairs)
    data = PairDataset(pairs, seed=1, hard_repeat=2)
    assert len(data) == len(pairs) + 2 * len(hard)
    assert all(data.caption(i) in LIBRARY.label(data.labels[i]).descriptions for i in range(len(data)))
    swapped = tmp_path / "swapped.png"
    shutil.copy(pairs[1].image_path, swapped)
    with pytest.raises(DataError, match="does not match its recorded SHA-256"):
        PairDataset([dataclasses.replace(pairs[0], image_path=str(swapped))]).load_image(0)


def test_cancel_keeps_state_and_a_rerun_resumes_from_it(station) -> None:
    log, qa = station
    cfg = dataclasses.replace(FAST, steps=20)
    seen: list[int] = []

    def progress(p) -> None:
        if p.stage == "train":
            seen.append(p.step)

    stopped = run_finetune(log, "inspector-tiny", cfg, progress, lambda: len(seen) >= 5, user=qa)
    assert stopped.status == "cancelled" and stopped.outcome.steps_done == 5
    assert ModelRegistry(log).list() == []  # nothing registered from a cancelled run
    seen.clear()
    done = run_finetune(log, "inspector-tiny", dataclasses.replace(cfg, max_wall_seconds=300), progress, user=qa)
    assert done.status == "candidate" and seen[0] == 6 and done.outcome.steps_done == cfg.steps
    # An explicit base is registered (for lineage) but not as the model in use.
    assert ModelRegistry(log).get(done.outcome.parent_id).state == "retired"


def test_cli_dry_run_lists_proposals_and_the_time_cap_still_yields_a_candidate(station, monkeypatch, capsys) -> None:
    log, _ = station
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["qa"])
    db = str(log.sdb.path)
    assert main(["finetune", "--db", db, "--user", "qa", "--dry-run"]) == 0
    assert "oil film on the sheet" in capsys.readouterr().out
    args = [
        "finetune",
        "--db",
        db,
        "--user",
        "qa",
        "--base",
        "inspector-tiny",
        "--steps",
        "200",
        "--batch-size",
        "16",
        "--forgetting-n",
        "4",
        "--forgetting-size",
        "64",
        "--max-minutes",
        "0.000001",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "candidate" and not out["completed"] and out["steps_done"] < 200
    assert ModelRegistry(log).get(out["model_id"]).recipe["finetune"]["max_wall_seconds"] == pytest.approx(6e-5)
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["op"])
    assert main(["finetune", "--db", db, "--user", "op", "--base", "inspector-tiny"]) == 2


@pytest.mark.timeout(180)
@pytest.mark.subprocess
def test_torchrun_job_trains_one_model_from_an_export_on_two_processes(station, tmp_path: Path) -> None:
    log, qa = station
    bundle = tmp_path / "line-1"
    log.export("2000-01-01", "2100-01-01", bundle, qa)
    from inspector.witness.note import signer_verifier, station_origin

    public = str(signer_verifier(log.identity(), station_origin(log.identity())))  # the bundle must verify
    out, summary = tmp_path / "job", tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "inspector.learning.job",
        "--bundle",
        str(bundle),
        "--station-key",
        public,
        "--base",
        "inspector-tiny",
        "--out",
        str(out),
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--forgetting-n",
        "4",
        "--forgetting-size",
        "64",
        "--summary",
        str(summary),
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    job = json.loads(summary.read_text())
    assert job["world_size"] == 2 and job["steps_done"] == 4 and job["completed"]
    assert len(list(out.glob("*.safetensors"))) == 1  # rank 0 alone wrote the candidate
    registered = ModelRegistry(log)
    model = register_checkpoint(log, job["checkpoint"], qa)
    assert model.model_id == job["model_id"] and model.state == "candidate"
    assert model.figures["candidate"]["confirmations"]["n"] == job["n_heldout"]
    assert registered.get(job["model_id"]).data_hash == job["data_hash"]


def test_doctored_sidecar_figures_do_not_pass_the_promotion_gate(station, tmp_path: Path) -> None:
    """Issue 14, finding 8: a job's checkpoint whose sidecar claims a large gain is measured by the
    station itself; the registry keeps the station's figures, and the gate refuses a worse model."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.factory import load_model

    log, qa = station
    bundle = load_model("inspector-tiny", device="cpu")
    with torch.no_grad():  # a candidate that ranks backwards: the opposite image direction
        bundle.model.visual.proj.mul_(-1.0)
    good = {"n": 18, "top1": 0.99, "top3": 1.0, "mrr": 0.99, "per_label_recall": {}, "auroc_defect_vs_ok": 1.0}
    bad = {**good, "top1": 0.1, "mrr": 0.2}
    claimed = {"baseline": {"confirmations": bad, "typed_defects": bad}, "candidate": {"confirmations": good}}
    claimed["candidate"]["typed_defects"] = good
    claimed["baseline_model_id"] = load_model("inspector-tiny", device="cpu").model_id
    path = tmp_path / "doctored"
    save_checkpoint(bundle, path, metadata={"metrics": claimed, "training": {"base": "inspector-tiny"}})
    model = register_checkpoint(log, path, qa, default_ref="inspector-tiny", config=FAST)
    own = model.figures
    assert own["claimed"]["candidate"]["confirmations"]["top1"] == 0.99  # kept for the audit, not used
    assert own["candidate"]["confirmations"] != good and own["baseline_model_id"] == claimed["baseline_model_id"]
    assert own["candidate"]["confirmations"]["n"] == len(training_set_from(log, heldout_fraction=0.25).heldout)
    assert promotion_problems(own, 0.0), own  # the station's own numbers: the reversed model is worse
    with pytest.raises(PromotionRefused):
        ModelRegistry(log).promote(model.model_id, qa, "the job says it is better", tolerance=0.0)
