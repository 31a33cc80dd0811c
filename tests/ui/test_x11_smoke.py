"""The station app starts in a real X window (Xvfb, Qt's xcb platform, not offscreen).

The other UI tests run on Qt's offscreen platform, which needs none of the system libraries the xcb
plugin links against; this one fails the way a user's first `make run` would on a machine without
them. `.ci/run` installs Xvfb and those libraries (ui/xcb_check.py lists them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ui import xcb_check

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.subprocess


def test_a_missing_library_prints_the_apt_line_instead_of_qts_abort(monkeypatch, capsys) -> None:
    monkeypatch.setattr(xcb_check, "xcb_plugin", lambda: Path("/x/libqxcb.so"))
    monkeypatch.setattr(xcb_check, "missing_libraries", lambda plugin: ["libxcb-icccm.so.4"])
    monkeypatch.setattr(xcb_check.sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert xcb_check.main([]) == 1
    err = capsys.readouterr().err
    assert "libxcb-icccm.so.4" in err and "sudo apt-get install -y libxcb-cursor0" in err
    monkeypatch.setattr(xcb_check, "missing_libraries", lambda plugin: [])
    assert xcb_check.main([]) == 0


@pytest.fixture()
def display():
    """A private Xvfb server; its display name (":N")."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb; .ci/run installs it for CI)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # Xvfb writes the display number once it accepts clients
        assert number, f"Xvfb did not start: {server.stderr.read().decode(errors='replace') if server.stderr else ''}"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.timeout(300)
def test_the_station_window_appears_under_xvfb(display: str, tmp_path: Path) -> None:
    plugin = xcb_check.xcb_plugin()
    assert plugin is not None
    assert xcb_check.missing_libraries(plugin) == [], xcb_check.APT_LINE
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY",)}
    env.update(
        DISPLAY=display,
        QT_QPA_PLATFORM="xcb",
        PYTHONPATH=str(ROOT),
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    entry = Path(sys.executable).with_name("inspector-station")
    # The installed entry point (`make run` starts it) when there is one; the same main() otherwise.
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "ui.app"]
    proc = subprocess.run(
        [*command, "--quit-after", "3", "--model", "inspector-tiny", "--db", str(tmp_path / "s.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "window shown on xcb" in proc.stdout


def test_the_readme_lists_the_same_apt_line() -> None:
    assert xcb_check.APT_LINE in (ROOT / "README.md").read_text(encoding="utf-8")
