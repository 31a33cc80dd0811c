"""The status bar shows each line output's connection state and backlog."""

from __future__ import annotations

from inspector.line.publisher import OutputStatus
from ui.operator.status_panel import StatusPanel
from ui.widgets import palette


def test_outputs_are_shown_and_a_down_output_is_amber(qtbot):
    panel = StatusPanel()
    qtbot.addWidget(panel)
    assert panel.line.isHidden()  # no outputs configured: nothing shown
    up = OutputStatus("mqtt", "mqtt://b:1883/v", connected=True, running=True)
    down = OutputStatus("opcua", "opc.tcp://0.0.0.0:4840", backlog=37, running=True, last_error="port in use")
    panel.set_outputs([up])
    assert not panel.line.isHidden() and panel.line.text() == "mqtt: connected · 0 waiting"
    assert palette.TROUBLE["warning"][0] not in panel.line.styleSheet()
    panel.set_outputs([up, down])
    assert panel.line.text() == "mqtt: connected · 0 waiting · opcua: DOWN · 37 waiting"
    assert palette.TROUBLE["warning"][0] in panel.line.styleSheet() and "port in use" in panel.line.toolTip()


def test_the_app_runs_configured_outputs_and_the_status_follows_them(qtbot, tmp_path):
    """A station with [output.mqtt] pointing at a broker that is not there: the side services start the
    publisher, and the operator's status shows it DOWN with its backlog, refreshed by the panel's timer."""
    from fakes import HashScorer
    from inspector.config import config_from_dict
    from inspector.station import Station
    from ui.side_services import start_side_services

    config = config_from_dict(
        {"database": {"path": str(tmp_path / "s.db")}, "output": {"mqtt": {"host": "127.0.0.1", "port": 9}}}
    )
    with Station.open(config, scorer=HashScorer("hash-model", dim=64)) as station:
        services = start_side_services(station, config)
        _status_follows(qtbot, services)


def _status_follows(qtbot, services) -> None:
    try:
        assert services.line is not None
        panel = StatusPanel()
        qtbot.addWidget(panel)
        panel.watch_outputs(services.line.status, every_ms=50)
        qtbot.waitUntil(lambda: "mqtt: DOWN" in panel.line.text(), timeout=10_000)
        assert palette.TROUBLE["warning"][0] in panel.line.styleSheet()
    finally:
        services.stop()
