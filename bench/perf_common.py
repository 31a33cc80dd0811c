"""Shared pieces of the performance benchmarks (latency, gradcam_cost, loss_cost, decision_log, startup).

Each benchmark writes bench/results/<name>.json (machine, command, figures, targets) and <name>.md
(the same, readable). A target is met, missed, or not measured (with the reason); nothing else.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# Sets OPENCV_IO_MAX_IMAGE_PIXELS before anything imports cv2 (models.synth does), as the station does.
import inspector.frame.imageio  # noqa: F401,E402  isort: skip

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUIET_OTHERS = 0.3  # CPU cores used on average by OTHER processes during the run, at most, to count as quiet
NO_GPU = "not measured: no GPU in this session"


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces this run."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python -m " + module, *(shlex.quote(a) for a in args)])


def machine(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """What the figures were measured on (the device is named: GPU targets need the GPU's name)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "device": device,
    }
    global _WATCH
    if _WATCH is None:
        _WATCH = OtherProcesses()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = threads or torch.get_num_threads()
        info["cuda_available"] = torch.cuda.is_available()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(device)
    except ImportError:  # the decision-log bench does not need torch
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


class OtherProcesses:
    """CPU time of user processes that are not this benchmark or its children, sampled every second.

    Kernel threads are left out: they include the writeback and journalling of this benchmark's own
    I/O. A process that ends between two samples loses its last second at most.
    """

    def __init__(self, period: float = 1.0) -> None:
        import threading

        self.t0, self.me = time.time(), os.getpid()
        self.first: dict[tuple[int, str], int] = {}
        self.last: dict[tuple[int, str], int] = {}
        self.names: dict[tuple[int, str], str] = {}
        self._stop = threading.Event()
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, args=(period,), name="cpu-watch", daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self._sample()

    def _sample(self, initial: bool = False) -> None:
        stats = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                raw = (d / "stat").read_text()
            except OSError:
                continue
            name, rest = raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()
            ppid, flags, ticks, start = int(rest[1]), int(rest[6]), int(rest[11]) + int(rest[12]), rest[19]
            if flags & 0x00200000:  # PF_KTHREAD
                continue
            stats[int(d.name)] = (ppid, ticks, start, name)
        mine = {self.me}
        changed = True
        while changed:  # this process's descendants (spawned workers, subprocesses)
            changed = False
            for pid, (ppid, *_rest) in stats.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        for pid, (_ppid, ticks, start, name) in stats.items():
            if pid in mine:
                continue
            key = (pid, start)
            self.first.setdefault(key, ticks if initial else 0)
            self.last[key] = ticks
            self.names[key] = name

    def result(self) -> tuple[float, list[str]]:
        """(average cores used by other processes, the busiest of them)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        hz = os.sysconf("SC_CLK_TCK")
        used = {k: (self.last[k] - self.first[k]) / hz for k in self.last}
        wall = max(time.time() - self.t0, 1e-9)
        top = sorted(used, key=used.get, reverse=True)[:3]
        return sum(used.values()) / wall, [f"{self.names[k]} {used[k]:.0f} s" for k in top if used[k] >= 1]


_WATCH: OtherProcesses | None = None


def load_note(info: dict[str, Any]) -> str:
    """One line on how far the timings can be trusted: load before the run, and the CPU that OTHER
    user processes used during it (this benchmark and its children excluded)."""
    global _WATCH
    start = info["load_average_start"][0]
    info["load_average_end"] = list(os.getloadavg())
    others, top = _WATCH.result() if _WATCH is not None else (float("nan"), [])
    _WATCH = None
    info["other_processes_cores"], info["other_processes_top"] = others, top
    quiet = others < QUIET_OTHERS  # the load before may be the previous benchmark of `make bench`
    info["quiet"] = quiet
    what = (
        f"1-min load average {start:.2f} before the run; other processes used {others:.2f} of "
        f"{info['cpu_count']} cores on average during it" + (f" ({', '.join(top)})" if top else "")
    )
    if quiet:
        return f"machine quiet ({what})"
    return f"machine NOT quiet ({what}): other jobs inflate these timings; rerun on a quiet machine for the record"


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def stats_ms(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min/max of millisecond values (numpy's linear percentiles)."""
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "n": int(a.size),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


@dataclass
class Target:
    """A requirement and its outcome: met / missed / not measured (with why)."""

    name: str
    limit: str
    measured: str = ""
    met: bool | None = None
    note: str = ""

    def check(self, value: float, limit: float, fmt: str, *, below: bool = True, note: str = "") -> Target:
        self.measured = fmt.format(value)
        self.met = bool(value <= limit) if below else bool(value >= limit)
        self.note = note or self.note
        return self

    def skip(self, why: str) -> Target:
        self.met, self.measured, self.note = None, "not measured", why
        return self

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "**missed**")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "limit": self.limit,
            "measured": self.measured,
            "met": self.met,
            "verdict": self.verdict.strip("*"),
            "note": self.note,
        }


def targets_table(targets: Sequence[Target]) -> str:
    rows = ["| target | limit | measured | verdict | note |", "|---|---|---|---|---|"]
    rows += [f"| {t.name} | {t.limit} | {t.measured} | {t.verdict} | {t.note} |" for t in targets]
    return "\n".join(rows)


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; numbers right-aligned unless `align` ('l'/'r' per column) says otherwise."""
    rows = [list(r) for r in rows]
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n|" + "|".join(sep) + "|\n")
    for r in rows:
        out.write("| " + " | ".join(str(c) for c in r) + " |\n")
    return out.getvalue().rstrip("\n")


def write_results(
    name: str,
    *,
    command: str,
    info: dict[str, Any],
    title: str,
    targets: Sequence[Target],
    figures: dict[str, Any],
    body: str,
    notes: Sequence[str] = (),
    started: float | None = None,
    out_dir: Path = RESULTS_DIR,
) -> tuple[Path, Path]:
    """Write <name>.json and <name>.md; returns their paths. Also prints the markdown."""
    load = load_note(info)
    wall = None if started is None else time.monotonic() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "command": command,
        "machine": info,
        "wall_s": wall,
        "targets": [t.as_dict() for t in targets],
        "figures": figures,
        "notes": list(notes),
    }
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(doc, indent=1, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")
    dev = info.get("device_name") or info.get("device")
    head = [
        f"# {title}",
        "",
        f"`{command}`",
        "",
        f"Run {info['date_utc']}"
        + (f", wall {wall:.0f} s" if wall is not None else "")
        + f"; {info.get('cpu_model', info['processor'])}, {info['cpu_count']} CPUs, {info['platform']}, "
        f"Python {info['python']}"
        + (f", torch {info['torch']} ({info.get('torch_threads')} threads)" if "torch" in info else "")
        + f"; device: {dev}.  ",
        load + ".",
        "",
        targets_table(targets),
        "",
        "",
    ]
    text = "\n".join(head) + body.rstrip() + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    md_path.write_text(text, encoding="utf-8")
    print(text, flush=True)
    return json_path, md_path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"frame size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise ValueError(f"frame size {text!r} is too small")
    return w, h


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return values


class PeakRSS:
    """Peak growth of this process's resident memory over a block (Linux; for CPU tensors).

    tracemalloc cannot see torch's allocator, and ru_maxrss only ever rises, so a setup that peaked
    higher hides the block. Instead: switch glibc to mmap every block over 64 KiB (freed tensors leave
    the RSS at once), give free heap back (malloc_trim), reset the kernel's high-water mark
    (/proc/self/clear_refs "5"), then read VmHWM after the block. The mmap setting stays for the
    rest of the process and slows small allocations a little: measure memory after the timings.
    """

    def __enter__(self) -> PeakRSS:
        import ctypes
        import gc

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD
        gc.collect()
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        self.base = _status_bytes("VmRSS")
        self.peak = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(0, _status_bytes("VmHWM") - self.base)


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


# ---------------------------------------------------------------- inputs shared by several benches


def synthetic_frames(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """`n` distinct generated defect frames (models.synth, held-out textures) at size (w, h), RGB uint8."""
    import cv2

    from models.synth import generate

    w, h = size
    side = max(w, h)
    frames = []
    for s in generate(n, seed=seed, size=min(side, 512), split="test", textile_fraction=0.0):
        im = s.image if side <= 512 else cv2.resize(s.image, (side, side), interpolation=cv2.INTER_CUBIC)
        top, left = (side - h) // 2, (side - w) // 2
        frames.append(np.ascontiguousarray(im[top : top + h, left : left + w]))
    return frames


def encode_frames(frames: Sequence[np.ndarray], fmt: str) -> list[bytes]:
    """PNG (Pillow defaults: lossless) or JPEG (quality 90) bytes of RGB frames."""
    from PIL import Image

    out = []
    for im in frames:
        buf = io.BytesIO()
        if fmt == "png":
            Image.fromarray(im).save(buf, format="PNG")
        elif fmt == "jpeg":
            Image.fromarray(im).save(buf, format="JPEG", quality=90)
        else:
            raise ValueError(f"format must be png or jpeg, got {fmt!r}")
        out.append(buf.getvalue())
    return out


def bench_library(n_descriptions: int, n_labels: int = 50, name: str = "bench"):
    """A valid Library with exactly n_descriptions distinct descriptions over min(n_labels, n) labels.

    Wording comes from the generic-surfaces seed library (label i uses seed label i mod 8), with a
    numbered qualifier so every description is distinct; ranking cost depends only on the counts.
    """
    from inspector.library.labels import Label, Library, load_library, seed_library_dir

    seed = load_library(seed_library_dir() / "generic_surfaces.yaml")
    n_labels = max(1, min(n_labels, n_descriptions))
    counts = [n_descriptions // n_labels + (1 if i < n_descriptions % n_labels else 0) for i in range(n_labels)]
    labels = []
    for i, count in enumerate(counts):
        base = seed.labels[i % len(seed.labels)]
        texts = [
            base.descriptions[j % len(base.descriptions)]
            + ("" if j < len(base.descriptions) and i < len(seed.labels) else f", variant {j} of family {i}")
            for j in range(count)
        ]
        labels.append(
            Label(
                id=base.id if i < len(seed.labels) else f"{base.id}-{i}",
                name=base.name if i < len(seed.labels) else f"{base.name} {i}",
                disposition=base.disposition,
                severity=base.severity,
                descriptions=tuple(texts),
            )
        )
    return Library(name, tuple(labels))


class RandomTextScorer:
    """A real scorer whose text embeddings are random unit vectors (seeded by the text).

    For libraries too large to embed with the text tower on a CPU in benchmark time: ranking cost
    depends on the number of descriptions, not on their embeddings. Images go to the real model.
    """

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self.model_id, self.logit_scale = scorer.model_id, scorer.logit_scale
        self.image_size, self.device = scorer.image_size, scorer.device
        self.embed_dim = scorer.embed_dim

    @property
    def bundle(self) -> Any:
        return self._scorer.bundle

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._scorer.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        v = rng.standard_normal((len(texts), self.embed_dim), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
