"""`inspector-station`: the Qt station app (what `make run` starts).

The window appears at once in a "loading the model…" state; the model loads in a worker (it
takes seconds on a CPU), which also warms the database (library seeded, description embeddings
cached) on its own connection, so opening the station on the GUI thread afterwards is quick.
The model is the registry's active one when the database has one, else `--model` / the config's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from inspector.capture import build_source
from inspector.capture.factory import SPEC_HELP
from inspector.capture.samples import sample_camera, sample_parts
from inspector.config import StationConfig, load_config
from inspector.errors import InspectorError
from inspector.frame.live import SourceFactory
from inspector.frame.scorer import Scorer
from inspector.station import Station
from ui.main_window import MainWindow
from ui.side_services import start_side_services
from ui.widgets.workers import Task, wait_for_workers

SAMPLE_COUNT = 16


@dataclass(frozen=True)
class Prepared:
    """What the loader hands the GUI thread: the loaded model and how to open the camera."""

    scorer: Scorer
    source_factory: SourceFactory


def prepare(progress, _cancelled, config: StationConfig, source: str | None, fps: float) -> Prepared:
    """Load the model, warm the database and set up the camera (runs in a worker thread)."""
    progress(0, 3, "loading the model")
    # The registry's active model, else the configured one; seeds the library and caches its
    # embeddings. Not announced: the GUI thread's open below logs which model runs and why.
    with Station.open(config, announce=False) as warm:
        scorer = warm.scorer
    progress(1, 3, "preparing the station database")
    progress(2, 3, "setting up the camera")
    if source is None:
        parts = sample_parts(SAMPLE_COUNT, size=max(224, scorer.image_size))
        share = config.camera.sample_defect_share  # a calm line by default ([camera] in the TOML)
        factory: SourceFactory = lambda _on_event: sample_camera(parts, fps=fps, defect_share=share)  # noqa: E731
    else:
        build_source(source)  # a bad SOURCE fails here, with its message, not after sign-in
        factory = lambda on_event: build_source(source, on_event=on_event)  # noqa: E731
    return Prepared(scorer, factory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector-station", description="the inspection station (Qt)")
    parser.add_argument("--config", help="station TOML file (default: embedded defaults)")
    parser.add_argument("--model", help="model name or checkpoint (overrides the config)")
    parser.add_argument("--db", help="station database (overrides the config)")
    parser.add_argument("--source", help=f"camera: {SPEC_HELP} (default: generated sample parts)")
    parser.add_argument("--fps", type=float, default=1.0, help="rate of the sample-part camera (default 1)")
    parser.add_argument(
        "--quit-after",
        type=float,
        metavar="SECONDS",
        help="quit this long after the window is shown: exit 0 if it is on screen (smoke tests)",
    )
    return parser


def _config(args: argparse.Namespace) -> StationConfig:
    config = load_config(args.config)
    if args.model:
        config = replace(config, model=replace(config.model, ref=args.model))
    if args.db:
        config = replace(config, database=replace(config.database, path=args.db))
    return config


def _quit_if_shown(app: QApplication, window: MainWindow) -> None:
    """--quit-after: exit 0 when the window is mapped on the screen, 3 when it never appeared."""
    handle = window.windowHandle()
    shown = window.isVisible() and handle is not None and handle.isExposed()
    print(f"inspector-station: window {'shown' if shown else 'NOT shown'} on {app.platformName()}", flush=True)
    app.exit(0 if shown else 3)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the station; the exit status (2 for a configuration error, like the CLI)."""
    os.umask(0o077)  # the station's files (database, images, anchor, bundles) are private to its account
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
    except InspectorError as exc:
        print(f"inspector-station: error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("rankclip-inspector")
    app.setApplicationName("station")
    window = MainWindow(config)
    window.show()
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), lambda: _quit_if_shown(app, window))

    def ready(prepared: Prepared) -> None:
        try:
            station = Station.open(config, scorer=prepared.scorer)
        except InspectorError as exc:
            window.show_fatal(str(exc))
            return
        window.side_services = services = start_side_services(station, config)  # search, drift, the line
        factory = prepared.source_factory
        if services.line is not None:  # the line's triggers carry a part id into each frame's record
            line, plain = services.line, factory
            factory = lambda on_event: line.wrap(plain(on_event), on_event)  # noqa: E731
        window.attach_station(station, factory)

    loader = Task(prepare, config, args.source, args.fps)
    loader.progress.connect(lambda done, total, text: window.loading.setText(f"Loading… {text} ({done + 1}/{total})"))
    loader.finished.connect(ready)
    loader.failed.connect(window.show_fatal)
    loader.start()
    status = app.exec()
    # Threads must end before the interpreter does: a model still loading, and every worker that
    # outlived its view (a heatmap still computing, a fine-tuning run cancelled at sign-out that
    # stops at its next step, a capture loop stuck in a driver).
    loader.wait(120_000)
    wait_for_workers(120_000)
    if getattr(window, "side_services", None) is not None:
        window.side_services.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
