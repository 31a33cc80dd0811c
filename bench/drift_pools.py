"""Pools of per-part drift statistics from real inference, cached (bench.drift_alarms, bench.drift_novelty).

Inference is the slow part of the drift benches (tens of ms to half a second per part on the shared
CPU); the monitor itself costs microseconds. Each pool (model id, seed, size, defect types, camera
shift) is computed once and kept in bench/results/drift_pools.json.gz, so choosing settings and
re-running a bench does not pay for inference again. A pool is keyed by the model's content id, so a
retrained model never reuses another model's statistics.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import astuple, fields
from datetime import UTC, datetime
from pathlib import Path

from inspector.drift.stats import PartStats

CACHE = Path(__file__).parent / "results" / "drift_pools.json.gz"
KNOWN = ("ok", "scratch", "crack", "stain", "pitting", "dent")  # the line's usual parts
NEW = ("hole", "burn")  # a defect type the reference never showed
_FIELDS = [f.name for f in fields(PartStats)]


def _key(model_id: str, seed: int, n: int, defects: Sequence[str], gain: float, blur: float) -> str:
    return f"{model_id}|seed={seed}|n={n}|defects={','.join(defects)}|gain={gain:g}|blur={blur:g}"


class PoolCache:
    """Per-part statistics of generated 96-px parts (models.synth test split) ranked by one model."""

    def __init__(self, model: str, path: Path = CACHE) -> None:
        self.model, self.path = model, path
        self._station = None
        self._data: dict[str, list[list]] = json.loads(gzip.decompress(path.read_bytes())) if path.exists() else {}
        self.inference_s = 0.0  # spent in this process (0 when every pool came from the cache)
        self.model_id = self._load_id()

    def _load_id(self) -> str:
        from inspector.frame.scorer import load_scorer

        self._scorer = load_scorer(self.model, "cpu")
        return str(self._scorer.model_id)

    def pool(
        self, seed: int, n: int, defects: Sequence[str] = KNOWN, *, gain: float = 1.0, blur: float = 0.0
    ) -> list[PartStats]:
        """`n` parts of seed `seed` (only `defects`), optionally through a shifted camera."""
        key = _key(self.model_id, seed, n, defects, gain, blur)
        if key not in self._data:
            self._data[key] = [list(astuple(p)) for p in self._infer(seed, n, defects, gain, blur)]
            self.path.parent.mkdir(exist_ok=True)
            self.path.write_bytes(gzip.compress(json.dumps(self._data).encode(), mtime=0))
        return [PartStats(**dict(zip(_FIELDS, row, strict=True))) for row in self._data[key]]

    def _infer(self, seed: int, n: int, defects: Sequence[str], gain: float, blur: float) -> list[PartStats]:
        from inspector.capture.samples import sample_parts
        from inspector.capture.simulated import shift_image
        from inspector.config import LibraryConfig
        from inspector.drift.stats import part_stats
        from inspector.frame.records import Frame
        from inspector.library.labels import load_library
        from inspector.station import Station

        if self._station is None:
            self._station = Station(self._scorer, load_library(LibraryConfig().path))
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        out = []
        for i, part in enumerate(sample_parts(n, size=96, seed=seed, defects=defects)):
            rgb = shift_image(part.rgb, gain=gain, blur_sigma=blur)
            out.append(part_stats(self._station.inspect(Frame(rgb, now, "cam", i))))
        self.inference_s += time.perf_counter() - t0
        print(
            f"pool seed {seed} n {n} {','.join(defects)} gain {gain:g} blur {blur:g}: {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        return out
