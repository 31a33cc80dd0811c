"""The model registry: append-only and chained, promotion only for QA and only when the candidate is
not worse on either held-out set beyond the tolerance, rollback to an earlier active model, and the
`inspector model` commands over it."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.learning.registry import (
    DEFAULT_TOLERANCE,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
    active_model_ref,
    promotion_problems,
)
from inspector.store.decision_log import DecisionLog
from inspector.store.export import verify_export
from inspector.store.users import AccessDenied, Session

PASSWORDS = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw", "aud": "auditor-pass-9"}
ROLES = {"op": "operator", "qa": "qa", "aud": "auditor"}


def mid(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def figures(baseline: str, confirm: tuple[float, float], typed: tuple[float, float]) -> dict:
    """Figures as the engine writes them: (baseline, candidate) top-1 per held-out set; MRR alike."""

    def m(v: float) -> dict:
        return {"n": 50, "top1": v, "top3": min(1.0, v + 0.1), "mrr": v, "per_label_recall": {}}

    return {
        "baseline_model_id": baseline,
        "baseline": {"confirmations": m(confirm[0]), "typed_defects": m(typed[0])},
        "candidate": {"confirmations": m(confirm[1]), "typed_defects": m(typed[1])},
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, add_accounts) -> tuple[Path, dict[str, Session]]:
    path = tmp_path_factory.mktemp("registry") / "station.db"
    log = DecisionLog.open(path)
    add_accounts(log, ROLES, passwords=PASSWORDS)
    users = {name: log.login(name, PASSWORDS[name]) for name in ROLES}
    log.close()
    return path, users


@pytest.fixture()
def station(template, tmp_path: Path):
    """A registry with the base model active and one candidate that improves on it."""
    source, users = template
    for suffix in ("", ".key", ".anchor"):
        shutil.copy2(f"{source}{suffix}", tmp_path / f"station.db{suffix}")
    log = DecisionLog.open(tmp_path / "station.db", create=False)
    registry = ModelRegistry(log)
    registry.register(
        mid("base"),
        "inspector-tiny",
        users["qa"],
        parent_id=None,
        data_hash="",
        recipe={},
        figures={},
        state="active",
        reason="in use",
    )
    yield log, registry, users
    log.close()


def _candidate(
    registry: ModelRegistry,
    user: Session,
    name: str,
    confirm: tuple[float, float],
    typed: tuple[float, float],
    baseline: str = "base",
) -> str:
    registry.register(
        mid(name),
        f"/models/{name}",
        user,
        parent_id=mid(baseline),
        data_hash=mid("data"),
        recipe={"loss": "rankclip"},
        figures=figures(mid(baseline), confirm, typed),
    )
    return mid(name)


def test_the_rule_names_the_set_and_metric_that_got_worse() -> None:
    assert promotion_problems(figures("b", (0.80, 0.79), (0.5, 0.5)), DEFAULT_TOLERANCE) == []
    problems = promotion_problems(figures("b", (0.80, 0.90), (0.50, 0.40)), DEFAULT_TOLERANCE)
    assert any("typed_defects top1" in p for p in problems) and not any("confirmations" in p for p in problems)
    assert promotion_problems(figures("b", (0.80, 0.90), (0.50, 0.40)), tolerance=0.2) == []
    assert "lack the held-out set" in promotion_problems({}, DEFAULT_TOLERANCE)[0]


def test_qa_promotes_a_candidate_that_is_not_worse(station) -> None:
    log, registry, users = station
    new = _candidate(registry, users["qa"], "new", (0.70, 0.85), (0.50, 0.49))
    promoted = registry.promote(new[:10], users["qa"], "better on line 2")
    assert promoted.state == "active" and registry.active().model_id == new
    assert registry.get(mid("base")).state == "retired"
    assert active_model_ref(log) == "/models/new"
    event = log.events(kind="model_promoted")[-1]
    assert event["user"] == "qa" and event["subject"] == new and "better on line 2" in event["detail"]
    assert '"confirmations"' in event["detail"] and mid("base") in event["detail"]
    assert log.verify().ok


@pytest.mark.parametrize(
    "confirm, typed, named",
    [((0.80, 0.70), (0.5, 0.5), "confirmations top1"), ((0.70, 0.90), (0.50, 0.30), "typed_defects top1")],
)
def test_promotion_is_refused_when_worse_on_either_set(station, confirm, typed, named) -> None:
    log, registry, users = station
    new = _candidate(registry, users["qa"], "worse", confirm, typed)
    with pytest.raises(PromotionRefused, match=named):
        registry.promote(new, users["qa"], "try it")
    assert registry.get(new).state == "candidate" and registry.active().model_id == mid("base")
    refused = log.events(kind="model_promotion_refused")
    assert refused and refused[-1]["subject"] == new and named in refused[-1]["detail"]
    assert log.verify().ok


def test_qa_may_allow_a_larger_drop_on_one_set_and_the_promotion_records_it(station) -> None:
    # A plant unlike the generic defects: its own parts improve, the shipped typed-defect set drops.
    log, registry, users = station
    new = _candidate(registry, users["qa"], "plant", (0.63, 0.86), (0.73, 0.20))
    with pytest.raises(PromotionRefused, match="typed_defects top1"):
        registry.promote(new, users["qa"], "line 2 learns its cells", set_tolerances={"typed_defects": 0.5})
    promoted = registry.promote(
        new,
        users["qa"],
        "line 2 learns its cells; generic set not relevant here",
        set_tolerances={"typed_defects": 0.6},
    )
    assert promoted.state == "active"
    detail = json.loads(log.events(kind="model_promoted")[-1]["detail"])
    assert detail["set_tolerances"] == {"confirmations": DEFAULT_TOLERANCE, "typed_defects": 0.6}
    refused = json.loads(log.events(kind="model_promotion_refused")[-1]["detail"])
    assert refused["set_tolerances"]["typed_defects"] == 0.5
    # The larger allowance is only for the set it names: the confirmations keep the default.
    worse = _candidate(registry, users["qa"], "worse", (0.86, 0.80), (0.2, 0.2), baseline="plant")
    with pytest.raises(PromotionRefused, match="confirmations top1"):
        registry.promote(worse, users["qa"], "try", set_tolerances={"typed_defects": 1.0})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"typo_set": 0.5}, "unknown held-out set"),
        ({"typed_defects": 1.5}, "between 0 and 1"),
        ({"typed_defects": float("nan")}, "between 0 and 1"),
    ],
)
def test_a_bad_set_tolerance_is_refused_before_anything_changes(station, bad, message) -> None:
    log, registry, users = station
    new = _candidate(registry, users["qa"], "new", (0.70, 0.85), (0.5, 0.1))
    with pytest.raises(RegistryError, match=message):
        registry.promote(new, users["qa"], "r", set_tolerances=bad)
    assert registry.get(new).state == "candidate" and not log.events(kind="model_promotion_refused")


@pytest.mark.parametrize("who", ["op", "aud"])
def test_operators_and_auditors_may_not_promote_and_the_refusal_is_logged(station, who) -> None:
    log, registry, users = station
    new = _candidate(registry, users["qa"], "new", (0.70, 0.85), (0.5, 0.5))
    with pytest.raises(AccessDenied):
        registry.promote(new, users[who], "I like it")
    with pytest.raises(AccessDenied):
        registry.rollback(mid("base"), users[who], "undo")
    denied = log.events(kind="denied", user=who)
    assert [e["subject"] for e in denied[-2:]] == ["promote_model", "rollback_model"]
    assert registry.get(new).state == "candidate"


def test_a_candidate_measured_against_another_model_is_refused(station) -> None:
    log, registry, users = station
    first = _candidate(registry, users["qa"], "first", (0.6, 0.8), (0.5, 0.5))
    second = _candidate(registry, users["qa"], "second", (0.6, 0.9), (0.5, 0.5))
    registry.promote(first, users["qa"], "good")
    with pytest.raises(PromotionRefused, match="fine-tune again from the active model"):
        registry.promote(second, users["qa"], "even better?")


def test_rollback_returns_to_an_earlier_active_model_and_the_chain_verifies_after_every_step(station) -> None:
    log, registry, users = station

    def verified(value):
        assert log.verify().ok
        return value

    new = verified(_candidate(registry, users["qa"], "new", (0.6, 0.8), (0.5, 0.5)))
    never = verified(_candidate(registry, users["qa"], "never", (0.6, 0.8), (0.5, 0.5)))
    with pytest.raises(RegistryError, match="already active"):
        registry.rollback(mid("base"), users["qa"], "no-op")
    verified(registry.promote(new, users["qa"], "good"))
    with pytest.raises(RegistryError, match="never active"):
        registry.rollback(never, users["qa"], "skip the checks")
    back = verified(registry.rollback(mid("base"), users["qa"], "scratches missed on night shift"))
    assert back.state == "active" and registry.get(new).state == "retired"
    assert active_model_ref(log) == "inspector-tiny"
    assert [h["state"] for h in registry.history(mid("base"))] == ["active", "retired", "active"]
    assert log.events(kind="model_rolled_back")[-1]["subject"] == mid("base")
    with pytest.raises(RegistryError, match="not a candidate"):
        registry.promote(new, users["qa"], "again")
    assert log.verify().ok


def test_registry_rows_are_append_only_chained_and_exported(station, tmp_path: Path) -> None:
    log, registry, users = station
    new = _candidate(registry, users["qa"], "new", (0.6, 0.8), (0.5, 0.5))
    with pytest.raises(RegistryError, match="already registered"):
        _candidate(registry, users["qa"], "new", (0.6, 0.8), (0.5, 0.5))
    for sql in (
        "UPDATE model_states SET state = 'active'",
        "DELETE FROM model_registry",
        "UPDATE model_registry SET figures = '{}'",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            log.sdb.conn.execute(sql)
    report = log.verify()
    assert report.ok
    summary = log.export("2000-01-01", "2100-01-01", tmp_path / "bundle", users["qa"])
    assert (summary.out_dir / "model_registry.jsonl").read_text().count(new) == 1
    assert verify_export(summary.out_dir).ok
    # The chain covers the registry: a row changed behind the station's back is found.
    log.sdb.conn.execute("DROP TRIGGER model_registry_no_update")
    log.sdb.conn.execute("UPDATE model_registry SET checkpoint = '/evil' WHERE model_id = ?", [new])
    assert not log.verify().ok and log.verify().bad_table == "model_registry"


def test_model_commands_list_promote_refuse_and_roll_back(station, monkeypatch, capsys) -> None:
    log, registry, users = station
    good = _candidate(registry, users["qa"], "good", (0.6, 0.8), (0.5, 0.5))
    bad = _candidate(registry, users["qa"], "bad", (0.6, 0.8), (0.5, 0.2))
    db = str(log.sdb.path)
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["qa"])
    assert main(["model", "promote", bad, "--db", db, "--user", "qa", "--reason", "r"]) == 2
    assert "typed_defects top1" in capsys.readouterr().err
    assert main(["model", "promote", bad, "--db", db, "--user", "qa", "--reason", "r", "--set-tolerance", "typed"]) == 2
    assert "SET=DROP" in capsys.readouterr().err
    assert main(["model", "promote", good[:12], "--db", db, "--user", "qa", "--reason", "better"]) == 0
    assert main(["model", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert f"{good[:12]}  active" in listing and f"{mid('base')[:12]}  retired" in listing
    assert main(["model", "rollback", mid("base"), "--db", db, "--user", "qa", "--reason", "undo"]) == 0
    monkeypatch.setenv("INSPECTOR_PASSWORD", PASSWORDS["op"])
    assert main(["model", "rollback", good, "--db", db, "--user", "op", "--reason", "mine"]) == 2
    assert ModelRegistry(log).active().model_id == mid("base")
