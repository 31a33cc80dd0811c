"""bench.learning_arms: the issue-13 arms table, verdicts and plot from a learning-curve JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.finetune_examples import logreg_c
from bench.learning_arms import aggregate, main, verdicts


def _row(seed: int, n: int, **acc: float) -> dict:
    return {
        "dataset": "textile",
        "loss": "rankclip",
        "seed": seed,
        "round": n,
        "arms": {arm: {"accuracy": v} for arm, v in acc.items()},
    }


@pytest.fixture
def run_json() -> dict:
    arms = dict(text=0.3, examples=0.6, finetuned=0.5, logreg=0.55)
    return {
        "round0": {"textile": {"top1": 0.3}},
        "rows": [
            _row(0, 50, **arms, both=0.7),
            _row(1, 50, **arms, both=0.8),
            _row(0, 200, **arms, both=0.6),  # a tie with examples: not above it
            _row(1, 200, **arms, both=0.6),
        ],
    }


def test_mean_and_std_over_seeds_and_round_zero_is_the_shipped_words(run_json: dict) -> None:
    t = aggregate(run_json)["textile"]["rankclip"]
    assert list(t) == ["0", "50", "200"]
    assert t["50"]["both"]["mean"] == pytest.approx(0.75)
    assert t["50"]["both"]["std"] == pytest.approx(0.0707, abs=1e-4)
    assert t["0"]["both"]["mean"] == 0.3 and "logreg" not in t["0"]


def test_verdicts_per_point_and_a_tie_is_missed(run_json: dict) -> None:
    v = {r["round"]: r for r in verdicts(aggregate(run_json))}
    assert set(v) == {50, 200}
    assert v[50]["both_above_single"] and v[50]["both_vs_single"] == pytest.approx(0.15)
    assert v[50]["both_above_baselines"] and v[50]["examples_above_baselines"]
    assert not v[200]["both_above_single"]
    assert v[200]["examples_vs_baselines"] == pytest.approx(0.05)


def test_cli_writes_table_and_plot(run_json: dict, tmp_path: Path) -> None:
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run_json))
    main([str(src), "--plot", str(tmp_path / "arms.png"), "--md", str(tmp_path / "arms.md")])
    md = (tmp_path / "arms.md").read_text()
    assert "both above fine-tuned and examples at 1 of 2 points" in md
    assert (tmp_path / "arms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression_c_is_the_one_validation_chose() -> None:
    chosen = Path(__file__).resolve().parent.parent / "bench" / "results" / "examples_curve.json"
    assert logreg_c() == json.loads(chosen.read_text())["chosen"]["logreg"]["C"] == 100.0


def test_runs_side_by_side_merge(run_json: dict, tmp_path: Path) -> None:
    elpv = {
        "round0": {"elpv": {"accuracy": 0.69}},
        "rows": [{**r, "dataset": "elpv"} for r in run_json["rows"]],
    }
    files = []
    for name, run in (("textile", run_json), ("elpv", elpv)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(run))
    main([*map(str, files), "--md", str(tmp_path / "arms.md")])
    md = (tmp_path / "arms.md").read_text()
    assert "| elpv | rankclip | 0 | 0.690 |" in md and "| textile | rankclip | 0 | 0.300 |" in md
    assert "at 2 of 4 points" in md


def test_progress_log_of_a_run_cut_short_reads_back() -> None:
    from bench.learning_arms import from_log

    log = (
        '[  400 s] elpv round 0 (shipped model): {"auroc": 0.65, "accuracy": 0.691}\n'
        "[  526 s]    elpv rankclip seed 2 round  200: auroc 0.8 accuracy 0.8  arms acc text 0.691 examples 0.807"
        " finetuned 0.781 both 0.780 logreg 0.801  (#1 right 29/50; train 41, refused; line 68 s)\n"
    )
    out = from_log(log)
    assert out["round0"]["elpv"]["accuracy"] == 0.691
    (row,) = out["rows"]
    assert (row["seed"], row["round"], row["arms"]["logreg"]["accuracy"]) == (2, 200, 0.801)
    assert set(row["arms"]) == {"text", "examples", "finetuned", "both", "logreg"}


def test_a_point_with_fewer_seeds_says_how_many(run_json: dict, tmp_path: Path) -> None:
    run_json["rows"] = [r for r in run_json["rows"] if (r["seed"], r["round"]) != (1, 200)]
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run_json))
    main([str(src), "--md", str(tmp_path / "arms.md"), "--plot", str(tmp_path / "arms.png")])
    md = (tmp_path / "arms.md").read_text()
    assert "| textile | rankclip | 200 | 0.300 (n=1) |" in md
    assert "| textile | rankclip | 50 | 0.300 ± 0.000 |" in md


def test_a_point_run_twice_counts_once_and_must_agree(run_json: dict) -> None:
    from bench.learning_arms import merge

    assert len(merge([run_json, run_json])["rows"]) == len(run_json["rows"])
    other = json.loads(json.dumps(run_json))
    other["rows"][0]["arms"]["both"]["accuracy"] += 0.01
    with pytest.raises(ValueError, match="differs between runs"):
        merge([run_json, other])
