"""Where decisions come from: a station's DecisionLog, or audit export bundles of several stations.

A bundle is used only when `verify_export` finds it intact: a model must not learn from records
that were changed after they were written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from inspector.errors import DataError
from inspector.learning.pairs import DecisionSource, TrainingSet, build_training_set
from inspector.store.decision_log import DecisionLog, image_file
from inspector.store.export import verify_export

# SQLite reads a LIMIT this large as "no limit"; the DecisionLog queries need one.
_ALL = 2**62


def _descriptions(rows: Iterable[dict[str, Any]]) -> dict[tuple[int, str], tuple[str, ...]]:
    found: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for r in rows:
        if not r["retired"]:
            found.setdefault((int(r["version"]), str(r["label_id"])), []).append((int(r["position"]), str(r["text"])))
    return {key: tuple(text for _, text in sorted(items)) for key, items in found.items()}


def source_from_log(log: DecisionLog, name: str = "station") -> DecisionSource:
    """Every inspection and decision of this station, with each library version's descriptions."""
    rows = log.sdb.db.query("SELECT version, label_id, position, text, retired FROM library_descriptions")
    root = log.sdb.image_root
    return DecisionSource(
        name,
        log.inspections(limit=_ALL),
        log.decisions(limit=_ALL),
        _descriptions(rows),
        lambda sha: image_file(root, sha),
    )


def _rows(root: Path, table: str) -> list[dict[str, Any]]:
    path = root / f"{table}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["row"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def source_from_bundle(
    bundle_dir: str | Path, key: bytes | None = None, station_key: str | None = None
) -> DecisionSource:
    """An audit export bundle (inspector.store.export) as a decision source; refused unless intact and
    authenticated (the station's signature with its public key, or the manifest HMAC with its key)."""
    root = Path(bundle_dir)
    report = verify_export(root, key, station_key)
    if not report.ok:
        raise DataError(
            f"export bundle {root} is not intact, so it will not train a model:\n  " + "\n  ".join(report.problems)
        )
    if not report.authenticated:
        raise DataError(
            f"export bundle {root} is not authenticated, so it will not train a model: give the"
            " exporting station's public key (`inspector log identity` on that station) with --station-key"
        )
    images = root / "images"
    return DecisionSource(
        root.name,
        _rows(root, "inspections"),
        _rows(root, "decisions"),
        _descriptions(_rows(root, "library_descriptions")),
        lambda sha: images / f"{image_file(Path('.'), sha).name}",
    )  # image_file checks the hash


def training_set_from(
    log: DecisionLog | None = None,
    bundles: Sequence[str | Path] = (),
    *,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    keys: Sequence[bytes | None] = (),
    station_keys: Sequence[str | None] = (),
) -> TrainingSet:
    """The training set of a station's log and/or export bundles (several stations train one model).

    Each bundle needs its station's public key (station_keys) or its secret HMAC key (keys), in the
    bundles' order: an unauthenticated bundle is refused.
    """
    for given, what in ((keys, "station keys"), (station_keys, "station public keys")):
        if given and len(given) != len(bundles):
            raise DataError(f"{len(given)} {what} for {len(bundles)} bundles: give one per bundle, in the same order")
    paired = zip(bundles, keys or [None] * len(bundles), station_keys or [None] * len(bundles))
    sources = ([source_from_log(log)] if log is not None else []) + [source_from_bundle(b, k, s) for b, k, s in paired]
    if not sources:
        raise DataError("no decisions to learn from: give a station database or at least one export bundle")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):  # the name keeps two stations' inspection ids apart in the records
        raise DataError(f"two sources share a name ({', '.join(names)}); give bundles distinct folder names")
    training_set = build_training_set(sources, heldout_fraction, seed)
    if log is None:
        return training_set
    # Texts QA already adopted or dismissed (inspector.library.typed_texts) are settled: not listed
    # again as awaiting QA. A bundle's texts stay listed: its station's dismissals are not known here.
    from inspector.library.typed_texts import settled_decisions

    settled, local = settled_decisions(log), sources[0].name
    still_open = tuple(p for p in training_set.proposals if not (p.source == local and p.decision_id in settled))
    return dataclasses.replace(training_set, proposals=still_open)
