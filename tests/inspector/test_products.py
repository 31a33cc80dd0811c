"""Per-product spread: each inspection records its product (line trigger, else [camera] product_id);
the report has a per-product table; the drift watch keeps one reference per product."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from inspector.config import config_from_dict
from inspector.drift.monitor import DriftSettings
from inspector.drift.stats import PartStats
from inspector.drift.watch import DriftWatch
from inspector.errors import ConfigError
from inspector.frame.records import Decision, Frame, PartTag
from inspector.report.kpi import period_rows
from tests.inspector.test_report import CASES, LIBRARY, _result  # noqa: F401  (the small hand-counted log)


def test_products_are_recorded_and_split_in_the_report(tmp_path) -> None:
    from inspector.cli import main
    from inspector.store.decision_log import DecisionLog

    path = tmp_path / "s.db"
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
    log.library.import_library(LIBRARY, log.login("qa1", "qa-pass-123"), "seed")
    op = log.login("op1", "op-pass-123")
    for i, (order, answer) in enumerate(CASES, start=1):
        product = "bracket-A" if i <= 4 else ("" if i == 8 else "hinge-B")
        inspection = log.record_inspection(replace(_result(order, i), product_id=product), op)
        if answer is not None:
            kind, label, rank = answer
            log.record_decision(Decision(inspection, kind, "op1", label, rank, typed_description="x"), op)
    inspections, _ = period_rows(log, "2000-01-01", "2100-01-01")
    assert [r["product_id"] for r in inspections] == ["bracket-A"] * 4 + ["hinge-B"] * 3 + [""]
    assert log.verify().ok
    with pytest.raises(Exception, match="append-only"):  # a product, once recorded, is not edited
        log.sdb.db.execute("UPDATE inspection_products SET product_id = 'x'")
    log.close()
    out = tmp_path / "r.html"
    assert main(["report", "--from", "2000-01-01", "--to", "2100-01-01", "--db", str(path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "bracket-A" in text and "hinge-B" in text and "(none)" in text


def test_station_takes_the_trigger_product_else_its_own(tmp_path) -> None:
    from inspector.config import LibraryConfig
    from inspector.frame.scorer import load_scorer
    from inspector.library.labels import load_library
    from inspector.station import Station

    st = Station(load_scorer("inspector-tiny", "cpu"), load_library(LibraryConfig().path), product_id="P1")
    import numpy as np

    rgb = np.full((32, 32, 3), 120, np.uint8)
    assert st.inspect(Frame(rgb, datetime.now(UTC), "cam", 0)).product_id == "P1"
    tagged = Frame(rgb, datetime.now(UTC), "cam", 1, part=PartTag("part-7", "P2"))
    assert st.inspect(tagged).product_id == "P2"


def test_product_id_config_and_cli_errors(tmp_path, capsys) -> None:
    from inspector.cli import main

    assert config_from_dict({"camera": {"product_id": "bracket-A"}}).camera.product_id == "bracket-A"
    with pytest.raises(ConfigError, match="product_id"):
        config_from_dict({"camera": {"product_id": "bad\nid"}})
    assert main(["watch", "sim:", "--db", str(tmp_path / "x.db"), "--user", "op1", "--product", "x" * 101]) == 2
    assert "--product" in capsys.readouterr().err


def test_drift_watch_keeps_one_reference_per_product() -> None:
    watch = DriftWatch(None, DriftSettings(reference_parts=100, window_parts=50, check_every=25))
    a = PartStats(0.3, 0.2, "ok", False, 120.0, 2.0, "m", 1, product_id="A")
    b = replace(a, brightness=60.0, product_id="B")  # product B is darker by nature: not a drift
    for i in range(300):  # interleaved: a station-wide reference would see a bimodal mix, per product it is stable
        watch.for_product("A").add(replace(a, brightness=120.0 + i % 7))
        watch.for_product("B").add(replace(b, brightness=60.0 + i % 5))
    assert watch.banner() is None
    for i in range(100):  # now only product B's lighting changes
        watch.for_product("B").add(replace(b, brightness=90.0 + i % 5))
        watch.for_product("A").add(replace(a, brightness=120.0 + i % 7))
    assert watch.banner() is not None and watch.banner().startswith("Product B:")
    assert watch.monitors["A"].alarm is None
