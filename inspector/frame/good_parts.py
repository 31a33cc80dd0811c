"""The good-part model: "unlike any good part", from the local features of confirmed good parts.

PatchCore-style (Roth et al. 2022): a memory bank of the image tower's local features (one unit row
per cell of the feature grid, inspector.frame.scorer.ScoredFrame.local) of operator-confirmed good
parts, thinned by greedy k-centre coreset selection. A frame's cells are scored by their cosine
distance to the nearest bank row; the frame's anomaly score is the largest, so one odd cell is
enough, and the per-cell distances are the anomaly map. A nearest-neighbour bank rather than
PaDiM's per-location Gaussian because textures and unaligned parts have no fixed location grid.

The threshold is set on confirmed good parts the bank never saw (a held-out share): a part above
it is flagged. The model is versioned by the SHA-256 of its safetensors file (numpy arrays and
string metadata only, never a pickle) and applies only to frames scored with the same model and
front end it was built with (`fits`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from inspector.errors import InspectorError
from inspector.frame.records import Verdict
from inspector.frame.scorer import ScoredFrame, Scorer, score_frame
from inspector.frame.scoring import ScoringSettings

FORMAT = "rankclip-good-parts/1"
# "global": one whole-part embedding per part; "local": the feature grid's cells (gives a map);
# "mid": the trunk's mid-level stages pooled per channel (models.trunk_features), read off the
# ranking's own forward and standardised by the bank's spread (BENCHMARKS.md: bench.goodpart_mid).
CELLS = ("global", "local", "mid")
# The default rows: whole-part embeddings from the model's own 448-px forward (448 px separated
# textiles far better than 224 on validation, at the cost of a second forward per frame). "mid"
# rows ride the ranking's forward (no second one) but separated textiles worse on validation
# (BENCHMARKS.md: bench.goodpart_local, bench.goodpart_mid), so they are an option, not the default.
DEFAULT_CELLS, DEFAULT_INPUT_SIZE = "global", 448
MID_INPUT_SIZE = 0  # "mid" rows by default come off the ranking's own forward
# Fraction of held-out good parts allowed above the threshold: the false-review rate QA accepts.
FALSE_REVIEW_RATE = 0.02
# Bank parts' leave-one-out scores join the held-out ones for the threshold (one-row-per-part cells):
# with 12 held-out parts the quantile is their maximum (BENCHMARKS.md, bench.goodpart_mid).
LEAVE_ONE_OUT = True
MAX_BANK = 4096  # rows kept by the coreset; cost per frame is cells x MAX_BANK x D multiply-adds


class GoodModelError(InspectorError):
    """A good-part model file is missing, altered, or not one this station wrote."""


@dataclass(frozen=True)
class GoodPartCheck:
    """One frame against the good-part model: its anomaly score, the threshold, per-cell distances."""

    model_sha256: str
    score: float
    threshold: float
    cells: np.ndarray = field(repr=False, compare=False)  # [K] cosine distance of each cell to the bank
    # The frame box (x0, y0, x1, y1) of each cell, from the forward the check read (its own 448-px
    # one by default, whose grid differs from the ranking's); empty for "global" and featureless scorers.
    boxes: tuple = field(default=(), repr=False, compare=False)

    @property
    def flagged(self) -> bool:
        return self.score > self.threshold


@dataclass(frozen=True)
class GoodPartModel:
    """A memory bank of good parts' local features [N, D] (unit rows), its threshold and provenance."""

    bank: np.ndarray
    threshold: float
    basis: dict[str, Any]  # what frames it applies to: model id, front end, region of interest
    info: dict[str, Any]  # how it was built: parts, held-out scores, built at, by
    sha256: str = ""  # of the file it was read from or written to
    # Per-dimension centre and spread of the bank's raw rows ("mid": statistics of unlike scales);
    # rows are standardised by them, then made unit length. None: rows are compared as they come.
    shift: np.ndarray | None = field(default=None, repr=False, compare=False)
    scale: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def cells(self) -> str:
        """What it compares: "global" (one embedding per part) or "local" (the feature grid's cells)."""
        return str(self.basis.get("cells", "local"))

    @property
    def input_size(self) -> int:
        """The short side of its own forward (0: the ranking's)."""
        return int(self.basis.get("input_size", 0))

    def fits(self, config_basis: dict[str, Any]) -> bool:
        """Whether frames scored under this basis (basis_of + cells + input size) compare with the bank."""
        return _canon(config_basis) == _canon(self.basis)

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        """A frame's raw rows as the bank holds them (standardised when the model has a scale)."""
        return rows if self.shift is None or self.scale is None else _standardise(rows, self.shift, self.scale)

    def distances(self, rows: np.ndarray) -> np.ndarray:
        """[K] distance of each raw row to its nearest bank row: cosine for unit features, Euclidean
        per sqrt(dimension) for standardised statistics (cosine on those measured far worse)."""
        if self.shift is None:
            return nearest_distance(rows, self.bank)
        return nearest_euclidean(self.prepare(rows), self.bank)

    def check(self, rows: np.ndarray) -> GoodPartCheck:
        """Score one frame's rows [K, D] (frame_rows: its local features, its embedding or mid statistics)."""
        cells = self.distances(rows)
        return GoodPartCheck(self.sha256, float(cells.max()) if len(cells) else 0.0, self.threshold, cells)


def basis_of(config_dict: dict[str, Any], cells: str = "local", input_size: int = 0, rows: str = "") -> dict[str, Any]:
    """What decides a row's meaning: the model and the front end (input size, tiles, flips) of the
    scoring configuration (ScoringConfig.as_dict), the cells compared and the forward's input size
    (and for "mid" which stages and statistics: `rows`, from row_spec).
    The region of interest only decides which cells exist, so one model serves every camera."""
    basis = {**{k: config_dict.get(k) for k in ("model_id", "front_end")}, "cells": cells, "input_size": input_size}
    return {**basis, "rows": rows} if rows else basis  # older models' bases (no "rows") keep matching


def row_spec(scored: ScoredFrame, cells: str) -> str:
    """What a "mid" row is made of (stages and statistics, from the encoder); "" for other cells."""
    return str(getattr(scored.features, "mid_spec", "")) if cells == "mid" else ""


def own_settings(settings: ScoringSettings, input_size: int) -> ScoringSettings:
    """The settings of the good-part model's forward: the station's, at its input size, whole frame."""
    return replace(settings, input_size=input_size or settings.input_size, local_weight=0.0)


def frame_rows(scored: ScoredFrame, cells: str) -> np.ndarray:
    """The rows a frame is compared by: its unit embedding [1, D] or its local features [K, D]."""
    if cells not in CELLS:
        raise GoodModelError(f"good-part model cells must be one of {CELLS}, got {cells!r}")
    if cells == "mid":
        mid = getattr(scored.features, "mid", None)
        if mid is None:
            raise GoodModelError("this model's image tower gives no mid-level features: use cells 'global' or 'local'")
        return np.asarray(mid, np.float32)[None, :]
    return scored.embedding[None, :] if cells == "global" else scored.local


def consult(
    model: GoodPartModel,
    scorer: Scorer,
    rgb: np.ndarray,
    settings: ScoringSettings,
    source_id: str,
    ranked: ScoredFrame,
) -> GoodPartCheck | None:
    """The frame against the model, reusing the ranking's forward when it is the same one (else a
    second forward at the model's input size); None when the model was built for other frames."""
    own = own_settings(settings, model.input_size)
    # The whole-frame view's mid statistics do not depend on the local blend; grid cells and the
    # embedding of a tiled forward do, so those reuse the ranking's forward only without it.
    same = own == replace(settings, local_weight=0.0) and (settings.local_weight == 0.0 or model.cells == "mid")
    scored = ranked if same else score_frame(scorer, rgb, own, source_id, mid=model.cells == "mid")
    if not model.fits(basis_of(scored.config.as_dict(), model.cells, model.input_size, row_spec(scored, model.cells))):
        return None
    check = model.check(frame_rows(scored, model.cells))
    boxes = getattr(scored.features, "local_boxes", None) if model.cells == "local" else None
    return replace(check, boxes=tuple(tuple(map(int, b)) for b in boxes)) if boxes else check


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def nearest_distance(local: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """[K] cosine distance (1 - cos) of each unit row of `local` to its nearest row of `bank`."""
    local = np.asarray(local, np.float32)
    best = np.full(len(local), -1.0, np.float32)
    for start in range(0, len(bank), chunk):  # bounded memory whatever the bank size
        np.maximum(best, (local @ bank[start : start + chunk].T).max(axis=1), out=best)
    # A cell whose feature is all zero (the encoder leaves such cells at zero rather than dividing
    # by nothing; flat texture regions give them) carries no evidence: no distance, not the maximum.
    return np.where(_live(local), np.clip(1.0 - best, 0.0, 2.0), 0.0).astype(np.float32)


def nearest_euclidean(rows: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """[K] Euclidean distance of each row to its nearest bank row, per sqrt(dimension)."""
    rows = np.asarray(rows, np.float32)
    sq = (rows**2).sum(1)[:, None] + (bank**2).sum(1)[None, :] - 2.0 * rows @ bank.T
    return (np.sqrt(np.maximum(sq.min(axis=1), 0.0)) / np.sqrt(max(rows.shape[1], 1))).astype(np.float32)


def _standardise(rows: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((np.asarray(rows, np.float32) - shift) / scale).astype(np.float32)


def _live(rows: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rows, axis=1) > 1e-6


def coreset(rows: np.ndarray, size: int, seed: int = 0, dims: int = 128) -> np.ndarray:
    """Indices of `size` rows chosen by greedy k-centre (each pick is the row farthest from those
    already chosen), on a random projection to `dims` dimensions as PatchCore does, for speed."""
    if len(rows) <= size:
        return np.arange(len(rows))
    rng = np.random.default_rng(seed)
    proj = rows @ rng.standard_normal((rows.shape[1], min(dims, rows.shape[1]))).astype(np.float32)
    chosen = [int(rng.integers(len(rows)))]
    dist = np.linalg.norm(proj - proj[chosen[0]], axis=1)
    for _ in range(size - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        np.minimum(dist, np.linalg.norm(proj - proj[nxt], axis=1), out=dist)
    return np.sort(np.array(chosen))


def fit(
    bank_parts: list[np.ndarray],
    calibration_parts: list[np.ndarray],
    basis: dict[str, Any],
    info: dict[str, Any],
    max_bank: int = MAX_BANK,
    rate: float = FALSE_REVIEW_RATE,
    leave_one_out: bool = LEAVE_ONE_OUT,
) -> GoodPartModel:
    """Bank from `bank_parts` (each [K, D]); threshold: the (1 - rate) quantile of the calibration
    parts' scores (good parts the bank never saw), so about `rate` of good parts go to review.

    With `leave_one_out` and one row per part (global, mid), each bank part's distance to the rest
    of the bank joins those scores: a few held-out parts alone put the quantile at their maximum.
    "mid" rows are standardised by the bank's per-dimension mean and spread first."""
    if not bank_parts or not calibration_parts:
        raise InspectorError("a good-part model needs good parts for its bank and held-out ones for its threshold")
    raw = np.concatenate(bank_parts).astype(np.float32)
    shift = scale = None
    if basis.get("cells") == "mid":
        shift, scale = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
        rows = _standardise(raw, shift, scale)
    else:
        rows = raw[_live(raw)]
    bank = np.ascontiguousarray(rows[coreset(rows, max_bank)])
    model = GoodPartModel(bank, 0.0, dict(basis), {}, shift=shift, scale=scale)
    scores = np.array([model.distances(p).max() for p in calibration_parts], np.float64)
    held_out = len(scores)
    one_row = all(len(p) == 1 for p in bank_parts) and len(bank) == len(rows) == len(bank_parts) > 1
    if leave_one_out and one_row:
        scores = np.concatenate([scores, _leave_one_out(bank, shift is None)])
    threshold = float(np.quantile(scores, 1.0 - rate, method="higher"))
    info = {
        **info,
        "bank_rows": len(bank),
        "cells_seen": len(rows),
        "calibration_scores": scores[:held_out].round(5).tolist(),
        "leave_one_out_scores": len(scores) - held_out,
    }
    return replace(model, threshold=threshold, info=info)


def _leave_one_out(bank: np.ndarray, cosine: bool) -> np.ndarray:
    """Each bank row's distance to the nearest OTHER row (the score it would get were it left out)."""
    if cosine:
        sims = bank @ bank.T
        np.fill_diagonal(sims, -1.0)
        return np.clip(1.0 - sims.max(axis=1), 0.0, 2.0)
    sq = (bank**2).sum(1)[:, None] + (bank**2).sum(1)[None, :] - 2.0 * bank @ bank.T
    np.fill_diagonal(sq, np.inf)
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0)) / np.sqrt(bank.shape[1])


def save(model: GoodPartModel, folder: Path) -> GoodPartModel:
    """Write the model as `<sha256>.safetensors` in `folder` (never overwritten: the name is the content)."""
    meta = {
        "format": FORMAT,
        "threshold": repr(model.threshold),
        "basis": _canon(model.basis),
        "info": _canon(model.info),
    }
    tensors = {"bank": model.bank.astype(np.float32)}
    if model.shift is not None and model.scale is not None:
        tensors |= {"shift": model.shift.astype(np.float32), "scale": model.scale.astype(np.float32)}
    data = st_save(tensors, metadata=meta)
    sha = hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha}.safetensors"
    if not path.exists():
        from models.durable import atomic_write

        atomic_write(path, data)
    return replace(model, sha256=sha)


def load(folder: Path, sha256: str) -> GoodPartModel:
    """Read the model named `sha256`; refused unless the file's bytes hash to that name."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise GoodModelError(f"{sha256!r} is not a good-part model id (a SHA-256 hex digest)")
    path = folder / f"{sha256}.safetensors"
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = exc.strerror or exc
        raise GoodModelError(f"good-part model {path} is missing or unreadable ({why}): rebuild it") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise GoodModelError(f"good-part model {path} was altered (its SHA-256 differs from its name): rebuild it")
    try:
        # The metadata from the same bytes that were hashed (not a second read of the file).
        meta = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
        tensors = st_load(data)
        bank = tensors["bank"]
        if meta.get("format") != FORMAT or bank.ndim != 2 or bank.dtype != np.float32:
            raise ValueError(f"format {meta.get('format')!r}, bank {bank.dtype} {bank.shape}")
        shift, scale = tensors.get("shift"), tensors.get("scale")
        if (shift is None) != (scale is None) or (shift is not None and shift.shape != (bank.shape[1],)):
            raise ValueError("shift and scale must both be present, one value per bank column")
        return GoodPartModel(
            bank, float(meta["threshold"]), json.loads(meta["basis"]), json.loads(meta["info"]), sha256, shift, scale
        )
    except (SafetensorError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GoodModelError(f"good-part model {path} is not one this station wrote: {exc}") from None


_UNLIKE = re.compile(r"unlike any good part: anomaly (\d+(?:\.\d+)?) above (\d+(?:\.\d+)?)")


def unlike_in(reason: str) -> tuple[float, float] | None:
    """(anomaly, threshold) when a logged verdict reason says the good-part model sent the part to
    review (review_if_unlike wrote it), else None: the record keeps no other trace of the score."""
    m = _UNLIKE.search(reason)
    return (float(m.group(1)), float(m.group(2))) if m else None


def review_if_unlike(verdict: Verdict, check: GoodPartCheck | None, top_name: str, top_disposition: str) -> Verdict:
    """The verdict with the good-part model's say: a part ranked good but unlike every good part
    goes to review ("none of the listed" fits it); a defect call is never relaxed by it."""
    if check is None or not check.flagged:
        return verdict
    why = f"unlike any good part: anomaly {check.score:.3f} above {check.threshold:.3f}"
    if top_disposition != "accept":
        return Verdict(verdict.disposition, verdict.needs_review, verdict.open_set, f"{verdict.reason}; {why}")
    return Verdict("review", True, True, f"{why} (ranked {top_name}); {verdict.reason}")


def anomaly_map(check: GoodPartCheck, boxes: list[tuple[int, int, int, int]], height: int, width: int) -> np.ndarray:
    """The per-cell distances laid on the frame (float32 HxW; overlapping cells keep the larger)."""
    out = np.zeros((height, width), np.float32)
    for d, (x0, y0, x1, y1) in zip(check.cells, boxes):
        np.maximum(out[y0:y1, x0:x1], np.float32(d), out=out[y0:y1, x0:x1])
    return out
