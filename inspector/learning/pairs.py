"""Training pairs from operator decisions (pure: rows in, frozen records out).

Rules, in order: a correction supersedes the decision it corrects; an image any effective decision
rejects is excluded; each image (by SHA-256) counts once, its latest effective decision deciding;
a confirm/pick becomes a TrainingPair carrying its label's descriptions in the inspection's library
version and the labels the model ranked above the operator's pick (`outranked`); a "none of these"
becomes a ProposedDescription for QA, never a pair. The held-out split is a pure function of
(seed, image hash), so an image never moves between splits as data grows or labels are corrected.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inspector.errors import DataError


@dataclass(frozen=True)
class TrainingPair:
    """One confirmed image: its label's descriptions and the operator's ranking evidence."""

    image_sha256: str
    image_path: str
    label_id: str
    descriptions: tuple[str, ...]
    # Labels the model ranked above the operator's pick (empty for a confirm of #1), best first.
    outranked: tuple[str, ...] = ()
    source: str = ""
    inspection_id: int = 0
    decision_id: int = 0
    library_version: int = 0
    box: tuple[int, int, int, int] | None = None  # a library example's defect box: training sees that crop

    def __post_init__(self) -> None:
        if not self.descriptions:
            raise DataError(f"pair for image {self.image_sha256[:12]}: label {self.label_id!r} has no descriptions")
        if self.label_id in self.outranked:
            raise DataError(f"pair for image {self.image_sha256[:12]}: the picked label cannot outrank itself")

    @property
    def pair_id(self) -> str:
        """SHA-256 of what training sees (image, label, texts, evidence); not where the file lies."""
        body = {
            "image": self.image_sha256,
            "label": self.label_id,
            "descriptions": list(self.descriptions),
            "outranked": list(self.outranked),
            **({"box": list(self.box)} if self.box else {}),  # absent when unset: existing ids stay
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ProposedDescription:
    """A "none of these" text for QA to adopt into the library (or not)."""

    text: str
    image_sha256: str | None
    model_top_label: str
    operator: str
    decided_at: str
    source: str = ""
    inspection_id: int = 0
    decision_id: int = 0


@dataclass(frozen=True)
class TrainingSet:
    """Train and held-out pairs (disjoint by image), proposals, and why rows were left out."""

    train: tuple[TrainingPair, ...]
    heldout: tuple[TrainingPair, ...]
    proposals: tuple[ProposedDescription, ...] = ()
    excluded: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0
    heldout_fraction: float = 0.2

    @property
    def data_hash(self) -> str:
        """SHA-256 over the sorted pair ids of the training split: what the candidate learned from."""
        return hashlib.sha256("\n".join(sorted(p.pair_id for p in self.train)).encode("ascii")).hexdigest()

    def label_counts(self) -> dict[str, tuple[int, int]]:
        """{label: (train, held-out)}."""
        train, held = Counter(p.label_id for p in self.train), Counter(p.label_id for p in self.heldout)
        return {label: (train[label], held[label]) for label in sorted(train.keys() | held.keys())}


@dataclass(frozen=True)
class DecisionSource:
    """One station's records as rows (DecisionLog queries or an export bundle's JSONL)."""

    name: str
    inspections: Sequence[Mapping[str, Any]]
    decisions: Sequence[Mapping[str, Any]]
    # (library version, label id) -> that version's active descriptions of the label
    descriptions: Mapping[tuple[int, str], tuple[str, ...]]
    image_path: Callable[[str], Path]


def heldout_key(seed: int, image_sha256: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, image): the split never depends on other images."""
    digest = hashlib.sha256(f"{seed}:{image_sha256}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_pairs(
    pairs: Iterable[TrainingPair], fraction: float, seed: int
) -> tuple[tuple[TrainingPair, ...], tuple[TrainingPair, ...]]:
    """(train, held-out): an image is held out iff heldout_key(seed, hash) < fraction.

    The rule is applied within every label alike, so each label is held out at the same expected
    rate (stratified in expectation); exact per-label quotas would move images between splits as
    data arrives, and a moved image would carry training into the held-out figures.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"held-out fraction {fraction} must be in [0, 1)")
    train, held = [], []
    for pair in sorted(pairs, key=lambda p: (p.label_id, p.image_sha256)):
        (held if heldout_key(seed, pair.image_sha256) < fraction else train).append(pair)
    return tuple(train), tuple(held)


def _candidates(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return sorted(json.loads(row["candidates"]), key=lambda c: int(c["rank"]))


def _pair(src: DecisionSource, row: Mapping[str, Any], d: Mapping[str, Any]) -> TrainingPair:
    candidates, label, sha = _candidates(row), str(d["label_id"]), str(row["image_sha256"])
    rank = int(d["picked_rank"] or 1)
    version = int(row["library_version"])
    texts = tuple(src.descriptions.get((version, label), ()))
    if not texts:  # e.g. a bundle whose window lacks that library version: the ranking still names one
        texts = tuple(c["description"] for c in candidates if c["label_id"] == label)
    return TrainingPair(
        sha,
        str(src.image_path(sha)),
        label,
        texts,
        tuple(c["label_id"] for c in candidates[: rank - 1]),
        src.name,
        int(row["id"]),
        int(d["id"]),
        version,
    )


def build_training_set(sources: Iterable[DecisionSource], heldout_fraction: float = 0.2, seed: int = 0) -> TrainingSet:
    """Apply the module's rules to one or more stations' rows; see the module docstring."""
    excluded: Counter[str] = Counter()
    by_image: dict[str, list[tuple[tuple[str, str, int], DecisionSource, Mapping, Mapping]]] = {}
    proposals: dict[tuple[str, str | None], ProposedDescription] = {}
    for src in sources:
        rows = {int(r["id"]): r for r in src.inspections}
        corrected = {int(d["corrects_id"]) for d in src.decisions if d.get("corrects_id") is not None}
        excluded["superseded"] += len(corrected)
        for d in src.decisions:
            if int(d["id"]) in corrected:
                continue
            row = rows.get(int(d["inspection_id"]))
            if row is None:  # an export window can cut an inspection off from its decision
                excluded["inspection_missing"] += 1
                continue
            sha = row.get("image_sha256")
            if d["kind"] == "none_of_these":
                text = str(d["typed_description"]).strip()
                proposals.setdefault(
                    (text.lower(), sha),
                    ProposedDescription(
                        text,
                        sha,
                        str(row["top_label_id"]),
                        str(d["operator"]),
                        str(d["decided_at"]),
                        src.name,
                        int(row["id"]),
                        int(d["id"]),
                    ),
                )
            if not sha:
                excluded["no_image"] += 1
                continue
            order = (str(d["decided_at"]), src.name, int(d["id"]))
            by_image.setdefault(str(sha), []).append((order, src, row, d))
    pairs: list[TrainingPair] = []
    rejected: set[str] = set()
    for sha, entries in by_image.items():
        entries.sort(key=lambda e: e[0])
        excluded["duplicate"] += len(entries) - 1
        if any(d["kind"] == "reject_image" for _, _, _, d in entries):
            excluded["rejected"] += 1  # a rejection is about the image itself, whatever else was said
            rejected.add(sha)
            continue
        _, src, row, d = entries[-1]
        if d["kind"] not in ("confirm", "pick"):
            excluded[str(d["kind"])] += 1
            continue
        if len({e[3]["label_id"] for e in entries if e[3]["kind"] in ("confirm", "pick")}) > 1:
            excluded["relabelled"] += 1  # kept, with the latest label: a count for QA, not a removal
        pairs.append(_pair(src, row, d))
    kept = tuple(p for p in proposals.values() if p.image_sha256 not in rejected)
    train, held = split_pairs(pairs, heldout_fraction, seed)
    counts = {k: v for k, v in sorted(excluded.items()) if v}
    return TrainingSet(train, held, kept, counts, seed, heldout_fraction)


def write_pairs_jsonl(training_set: TrainingSet, path: str | Path) -> Path:
    """One JSON line per pair with its split; never overwrites a file."""
    path = Path(path)
    if path.exists():
        raise DataError(f"{path} exists; pairs files are never overwritten: name a new file")
    lines = [
        json.dumps({"split": split, **asdict(p)}, sort_keys=True)
        for split, pairs in (("train", training_set.train), ("heldout", training_set.heldout))
        for p in pairs
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_pairs_jsonl(paths: Iterable[str | Path], heldout_fraction: float = 0.2, seed: int = 0) -> TrainingSet:
    """Pairs files (several stations' too) as one set: deduplicated by image, re-split by (seed, hash)."""
    seen: dict[str, TrainingPair] = {}
    dupes = 0
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            items = [json.loads(line) for line in lines if line.strip()]
            for item in items:
                item.pop("split", None)
                pair = TrainingPair(
                    **{
                        **item,
                        "descriptions": tuple(item["descriptions"]),
                        "outranked": tuple(item.get("outranked", ())),
                        "box": tuple(item["box"]) if item.get("box") else None,
                    }
                )
                dupes += pair.image_sha256 in seen
                seen.setdefault(pair.image_sha256, pair)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DataError(f"pairs file {path} is not readable as written by write_pairs_jsonl: {exc}") from exc
    train, held = split_pairs(seen.values(), heldout_fraction, seed)
    return TrainingSet(train, held, (), {"duplicate": dupes} if dupes else {}, seed, heldout_fraction)
