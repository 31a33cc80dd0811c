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
