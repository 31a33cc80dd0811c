"""Issue 14, finding 8 at the upgrade: registry rows and records that name a model by its legacy
(weights-only) id are bound, once, to the id over weights + sidecar config, so they still resolve and
old records stay explainable; a sidecar edited afterwards is another model and the old id is not reused."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from inspector.errors import ModelLoadError
from inspector.frame.scorer import load_scorer
from inspector.learning.registry import ModelRegistry
from inspector.station_model import check_identity, choose_model, compile_model
from inspector.store.decision_log import DecisionLog
from models.checkpoint import save_checkpoint
from tests.inspector.test_chain_tamper import LIBRARY, _result


@pytest.fixture()
def upgraded(tiny_bundle, tmp_path: Path):
    """A station as the previous software left it: an active model and a record under the legacy id."""
    path = tmp_path / "models" / "m"
    path.parent.mkdir()
    new_id = save_checkpoint(tiny_bundle, path)
    legacy = json.loads(path.with_name("m.json").read_text())["weights_sha256"]
    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        log.users.create_first_admin("admin", "admin-pass-1")
        log.users.add_user("qa1", "qa", "qa-pass-123", log.login("admin", "admin-pass-1"), temporary=False)
        qa = log.login("qa1", "qa-pass-123")
        version = log.library.import_library(LIBRARY, qa, "seed")
        old = _result(version, 1)
        old = dataclasses.replace(old, ranking=dataclasses.replace(old.ranking, model_id=legacy))
        log.record_inspection(old, qa)
        ModelRegistry(log).register(
            legacy, str(path), qa, parent_id=None, data_hash="", recipe={}, figures={}, state="active"
        )
    with sqlite3.connect(db) as raw:  # as if 0011 had not run yet: the next open upgrades
        raw.execute("DELETE FROM _sqlite_migrations WHERE name = '0011_model_config_ids'")
    return db, path, legacy, new_id


def test_an_id_that_cannot_be_bound_at_the_upgrade_is_recorded_and_not_run(upgraded) -> None:
    db, path, legacy, new_id = upgraded
    path.with_name("m.json").unlink()  # the checkpoint is incomplete at the upgrade
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok
        row = log.sdb.conn.execute(
            "SELECT detail FROM events WHERE kind = 'model_id_unbound' AND subject = ?", [legacy]
        )
        assert "cannot be read" in row.fetchone()[0]
        assert choose_model(log, "unused").model_id == legacy  # no new id stands in for it


def test_legacy_ids_are_bound_at_the_upgrade_and_still_resolve(upgraded) -> None:
    db, path, legacy, new_id = upgraded
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok  # the bindings are chained events, written in the upgrade's transaction
        assert ModelRegistry(log).get(new_id).model_id == legacy  # the old row, found by either id
        choice = choose_model(log, "unused")
        assert choice.model_id == new_id
        scorer = load_scorer(choice.ref, "cpu")
        check_identity(scorer, choice)
        state = compile_model(scorer, LIBRARY, 1, log, choice.ref, choice.source)
        assert state.ranked(legacy) and state.ranked(new_id)  # the old record is this model's ranking


def test_a_sidecar_edited_after_the_upgrade_is_not_the_registered_model(upgraded) -> None:
    db, path, legacy, new_id = upgraded
    with DecisionLog.open(db, create=False) as log:
        choose_model(log, "unused")  # bound already
    sidecar = path.with_name("m.json")
    meta = json.loads(sidecar.read_text())
    meta["preprocess_cfg"]["mean"] = [0.2, 0.2, 0.2]  # same weights, other scores
    sidecar.write_text(json.dumps(meta))
    with DecisionLog.open(db, create=False) as log:
        choice = choose_model(log, "unused")
        scorer = load_scorer(choice.ref, "cpu")
        assert scorer.model_id not in (legacy, new_id)
        with pytest.raises(ModelLoadError, match="sidecar"):
            check_identity(scorer, choice)
        state = compile_model(scorer, LIBRARY, 1, log, choice.ref, "caller")
        assert not state.ranked(legacy)  # the old record's id is not silently reused
