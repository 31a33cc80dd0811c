"""Check, before the station starts, that Qt's X11 platform plugin (xcb) can load.

pip installs Qt but not the system libraries its xcb plugin links against; without them Qt aborts
with "could not load the Qt platform plugin xcb". This check runs `ldd` on the plugin and, when a
library is missing, prints the one apt-get line that installs them all (`make run` runs it first).
Standard library only, so `.ci/run` can also ask it for the package list before the venv exists:
`python3 ui/xcb_check.py --apt-packages`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Debian/Ubuntu packages of every library libqxcb.so needs beyond what the Python image has
# (from `ldd` on PySide6 6.x's libqxcb.so and libQt6XcbQpa.so.6 on Debian 12).
APT_PACKAGES = (
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-render0",
    "libxcb-shape0",
    "libxcb-shm0",
    "libxcb-sync1",
    "libxcb-util1",
    "libxcb-xfixes0",
    "libxcb-xkb1",
    "libxcb1",
    "libx11-xcb1",
    "libx11-6",
    "libxkbcommon-x11-0",
    "libxkbcommon0",
    "libgl1",
    "libegl1",
    "libfontconfig1",
    "libfreetype6",
    "libglib2.0-0",
    "libdbus-1-3",
)
APT_LINE = "sudo apt-get install -y " + " ".join(APT_PACKAGES)


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so, or None when PySide6 or the plugin is not there."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries `ldd` cannot find for the plugin (its whole dependency tree)."""
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=60).stdout
    names = {line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line}
    return sorted(names)


def check() -> str | None:
    """None when the xcb plugin can load (or this is not the platform Qt will use); else the message."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return None  # Qt takes its Wayland plugin on a Wayland session
    platform = platform.split(":")[0]
    if not sys.platform.startswith("linux") or platform not in ("", "xcb") or shutil.which("ldd") is None:
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None  # no PySide6 here: the import error that follows says so
    missing = missing_libraries(plugin)
    if not missing:
        return None
    return (
        f"Qt's X11 platform plugin cannot load: missing system libraries {', '.join(missing)}.\n"
        f"Install them (Debian/Ubuntu) with:\n    {APT_LINE}"
    )


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the station can start its window, 1 with the apt-get line when it cannot."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--apt-packages"]:
        print(" ".join(APT_PACKAGES))
        return 0
    message = check()
    if message:
        print(f"inspector-station: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
