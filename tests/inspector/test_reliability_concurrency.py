"""The GUI and a headless `inspector watch` on one database: the watch in a process of its own,
the GUI's writes through the core API it uses (LiveCapture records every shown part on a capture
thread; the operator's answers are committed on the main thread). No record is lost or stored
twice, and the single chain verifies with a gapless sequence. The long version runs in
`make bench-reliability`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.reliability import concurrency_campaign, shared_cli_server  # noqa: E402


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory):
    return shared_cli_server(tmp_path_factory.getbasetemp() / "inspector-cli")


@pytest.mark.timeout(300)
def test_gui_and_headless_watch_write_one_intact_chain(tmp_path: Path, cli_server) -> None:
    report = concurrency_campaign(tmp_path, cli_server, watch_frames=80, gui_parts=40)
    assert report.watch_exit == 0 and not report.problems, report.problems
    assert report.watch_acknowledged == report.watch_rows == 80
    assert report.gui_inspections == report.gui_rows >= 40 and report.gui_decisions == report.gui_inspections
    assert report.decision_rows == report.gui_decisions and report.foreign_rows == 0
    assert report.interleavings >= 10, "the two writers did not overlap"
    assert report.lost == 0 and report.duplicated == 0
    assert report.integrity_ok and report.chain_ok and report.seq_gapless
