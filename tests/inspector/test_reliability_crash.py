"""SIGKILL at random moments while `inspector watch` writes: after every kill the database passes
integrity_check, the chain and its anchor verify, and every inspection the process printed (it
prints only after COMMIT returned) is in the database. The long version (200 kills) is
`make bench-reliability`; see bench/reliability.py for how the runs are started."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.reliability import (  # noqa: E402
    check_database,
    crash_campaign,
    make_station_db,
    parse_acks,
    shared_cli_server,
    user_env,
    watch_argv,
)

KILLS = 20


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory):
    return shared_cli_server(tmp_path_factory.getbasetemp() / "inspector-cli")


@pytest.mark.timeout(300)
def test_sigkill_during_watch_loses_no_acknowledged_inspection(tmp_path: Path, cli_server) -> None:
    report = crash_campaign(tmp_path, KILLS, cli_server, seed=7)
    assert report.kills == KILLS and report.unexpected_exits == 0, report.problems
    # The kills hit the write loop (many acknowledged inspections), not only the start-up.
    assert report.acknowledged > 5 * KILLS and report.kills_before_first_ack < KILLS // 2
    assert report.integrity_failures == 0 and report.chain_failures == 0, report.problems
    assert report.lost == 0 and report.found == report.acknowledged, report.problems
    assert report.inspections_stored >= report.acknowledged
    assert report.leftover_anchor_temp_files <= 1  # only the last kill's; each anchor write clears older ones


@pytest.mark.timeout(120)
def test_the_harness_sees_a_lost_acknowledgement(tmp_path: Path, cli_server) -> None:
    """The check that finds every acknowledged row must be able to fail: an acknowledgement whose
    row is not there (or differs) is reported, so lost == 0 above means something."""
    db = tmp_path / "s.db"
    make_station_db(db)
    child = cli_server.run(watch_argv("sim:?fps=max&count=3&size=32x24", db, "--max-frames", "3"), user_env(), 120)
    assert child.exit_code == 0, child.stderr()
    acks = parse_acks(child.stdout_lines())
    assert len(acks) == 3 and "Traceback" not in child.stderr()
    forged = [*acks, {**acks[0], "inspection_id": 999}, {**acks[1], "image_sha256": "0" * 64}]
    integrity, chain_ok, missing, stored, _ = check_database(db, forged)
    assert integrity and chain_ok and stored == 3
    assert [json.dumps(m, sort_keys=True) for m in missing] == [json.dumps(m, sort_keys=True) for m in forged[3:]]
