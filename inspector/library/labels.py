"""The defect-description library: labels with plain-language descriptions, YAML in and out.

A library file (see inspector/library/seeds/README.md for the format) holds labels; each label has an
id, a display name, a disposition (what the line does with the part), a severity, an optional
score threshold and scope, and one or more descriptions. The database-backed, versioned store
builds on these records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inspector.errors import LibraryError

DISPOSITIONS = ("accept", "rework", "scrap", "review")
# A label added at the station is a defect nobody has judged yet: a person looks at its parts
# (review) until QA sets what the line does with them; severity 0 would mean harmless, so the
# middle of the scale. The GUI's new-label form and `inspector library add` start from these.
NEW_LABEL_DISPOSITION = "review"
NEW_LABEL_SEVERITY = 3
FORMAT_VERSION = 2  # written when a label carries examples; format 1 files are still read
READ_FORMATS = (1, 2)
_LABEL_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_MODEL_ID = re.compile(r"^[0-9a-f]{12,64}$")
# Descriptions are read by operators and embedded by the text tower (context 32 tokens):
# a long paragraph would be truncated silently, so refuse it instead.
MAX_DESCRIPTION_CHARS = 200


@dataclass(frozen=True)
class Example:
    """An example image of a label: a file (as read from a library file) or a stored image (sha256).

    `path` is where the file is (resolved against the library file's folder when loaded); once
    imported into the station, `sha256` names the stored image (inspector.library.examples).
    `box` [x0, y0, x1, y1] in pixels marks where the defect is; the ranking embeds that crop.
    """

    path: str = ""
    sha256: str = ""
    reason: str = ""
    box: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not self.path and not self.sha256:
            raise LibraryError("an example needs a path (or, once stored, its SHA-256)")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if min(self.box) < 0 or x1 <= x0 or y1 <= y0:
                raise LibraryError(
                    f"example box {list(self.box)} must be [x0, y0, x1, y1] with 0 <= x0 < x1, 0 <= y0 < y1"
                )

    @property
    def key(self) -> str:
        """What identifies the example: its stored hash, else its file."""
        return self.sha256 or self.path


@dataclass(frozen=True)
class Label:
    """One defect class (or the "ok" class) and the descriptions that define it."""

    id: str
    name: str
    disposition: str
    severity: int
    descriptions: tuple[str, ...]
    threshold: float | None = None
    scope: Mapping[str, str] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if not _LABEL_ID.match(self.id):
            raise LibraryError(f"label id {self.id!r} is invalid: use 1-64 lowercase letters, digits, '_' or '-'")
        if self.disposition not in DISPOSITIONS:
            raise LibraryError(
                f"label {self.id!r}: disposition {self.disposition!r} is not one of {', '.join(DISPOSITIONS)}"
            )
        if not 0 <= self.severity <= 5:
            raise LibraryError(f"label {self.id!r}: severity {self.severity} must be 0 (none) to 5 (critical)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise LibraryError(f"label {self.id!r}: threshold {self.threshold} must be between 0 and 1")
        if not self.descriptions and not self.examples:
            raise LibraryError(f"label {self.id!r} has no descriptions and no examples: give at least one")
        keys = [example.key for example in self.examples]
        if len(set(keys)) != len(keys):
            raise LibraryError(f"label {self.id!r} lists the same example twice")
        seen: set[str] = set()
        for text in self.descriptions:
            if not text.strip():
                raise LibraryError(f"label {self.id!r} has an empty description")
            if len(text) > MAX_DESCRIPTION_CHARS:
                raise LibraryError(
                    f"label {self.id!r}: description {text[:40]!r}... is {len(text)} characters;"
                    f" keep each under {MAX_DESCRIPTION_CHARS}"
                )
            if text.strip().lower() in seen:
                raise LibraryError(f"label {self.id!r} repeats the description {text!r}")
            seen.add(text.strip().lower())

    @property
    def is_ok(self) -> bool:
        """An "ok" label: the part passes (disposition accept, severity 0)."""
        return self.disposition == "accept" and self.severity == 0


@dataclass(frozen=True)
class Library:
    """A named set of labels; label ids are unique and the order is the file's order."""

    name: str
    labels: tuple[Label, ...]
    description: str = ""
    # Model id (or its first >= 12 hex digits) the hand-set thresholds were chosen for; "" = unknown.
    # A different model in force flags them for review (inspector.library.threshold_review).
    thresholds_model: str = ""

    def __post_init__(self) -> None:
        if not self.labels:
            raise LibraryError(f"library {self.name!r} has no labels")
        ids = [label.id for label in self.labels]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise LibraryError(f"library {self.name!r} repeats label ids: {', '.join(dupes)}")

    def label(self, label_id: str) -> Label:
        """The label with this id, or LibraryError naming the known ids."""
        for label in self.labels:
            if label.id == label_id:
                return label
        raise LibraryError(f"library {self.name!r} has no label {label_id!r}; known: {', '.join(self.label_ids)}")

    @property
    def label_ids(self) -> tuple[str, ...]:
        return tuple(label.id for label in self.labels)

    def label_texts(self) -> dict[str, list[str]]:
        """{label id: descriptions}: the plain form the model side takes."""
        return {label.id: list(label.descriptions) for label in self.labels}

    @property
    def ok_label_ids(self) -> tuple[str, ...]:
        return tuple(label.id for label in self.labels if label.is_ok)


def library_from_dict(data: Any, source: str = "<dict>", base_dir: Path | None = None) -> Library:
    """Validate a parsed YAML document and build the Library; example paths resolve against base_dir."""
    version, name, description, raw_labels = library_header(data, source)
    labels = tuple(label_from_dict(item, source, i, version, base_dir) for i, item in enumerate(raw_labels, 1))
    # library_header checked thresholds_model (the model the hand-set thresholds were reviewed under)
    return Library(name=name, labels=labels, description=description, thresholds_model=data.get("thresholds_model", ""))


def library_header(data: Any, source: str = "<dict>") -> tuple[int, str, str, list]:
    """(format, name, description, raw `labels:` entries) of a parsed document; LibraryError if malformed."""
    if not isinstance(data, dict):
        raise LibraryError(f"{source}: expected a mapping with 'name' and 'labels' at the top level")
    version = data.get("format", 1)
    if version not in READ_FORMATS or isinstance(version, bool):
        raise LibraryError(f"{source}: format {version!r} is not supported (this station reads formats 1 and 2)")
    unknown = set(data) - {"format", "name", "description", "labels", "thresholds_model"}
    if unknown:
        raise LibraryError(f"{source}: unknown top-level keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise LibraryError(f"{source}: 'name' must be a non-empty string")
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, list):
        raise LibraryError(f"{source}: 'labels' must be a list")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise LibraryError(f"{source}: 'description' must be a string")
    thresholds_model = data.get("thresholds_model", "")
    if not isinstance(thresholds_model, str) or (thresholds_model and not _MODEL_ID.match(thresholds_model)):
        raise LibraryError(f"{source}: 'thresholds_model' must be a model id (12-64 lowercase hex digits)")
    return version, name.strip(), description.strip(), raw_labels


def label_from_dict(item: Any, source: str, position: int, version: int = 1, base_dir: Path | None = None) -> Label:
    """One `labels:` entry as a Label; errors name it as a reader counts (from 1) and by its id."""
    label_id = item.get("id") if isinstance(item, dict) else None
    where = f"{source}: label {position}" + (f" ({label_id!r})" if isinstance(label_id, str) else "")
    return _label_from_dict(item, where, version, base_dir)


def _label_from_dict(item: Any, where: str, version: int = 1, base_dir: Path | None = None) -> Label:
    if not isinstance(item, dict):
        raise LibraryError(f"{where}: expected a mapping")
    allowed = {"id", "name", "disposition", "severity", "threshold", "scope", "descriptions"}
    if version >= 2:
        allowed.add("examples")
    unknown = set(item) - allowed
    if unknown:
        raise LibraryError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    needed = ("id", "disposition", "descriptions") if "examples" not in item else ("id", "disposition")
    missing = [k for k in needed if k not in item]
    if missing:
        raise LibraryError(f"{where}: missing {', '.join(missing)}")
    descriptions = item.get("descriptions") or []
    if not isinstance(descriptions, list) or not all(isinstance(d, str) for d in descriptions):
        raise LibraryError(f"{where}: 'descriptions' must be a list of strings")
    scope = item.get("scope") or {}
    if not isinstance(scope, dict) or set(scope) - {"product", "station"}:
        raise LibraryError(f"{where}: 'scope' may only hold 'product' and 'station'")
    severity = item.get("severity", 0)
    if isinstance(severity, bool) or not isinstance(severity, int):
        raise LibraryError(f"{where}: 'severity' must be an integer 0-5")
    threshold = item.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise LibraryError(f"{where}: 'threshold' must be a number between 0 and 1")
    for key in ("id", "name", "disposition"):
        if key in item and not isinstance(item[key], str):
            raise LibraryError(f"{where}: {key!r} must be a string, got {type(item[key]).__name__}")
    if not all(isinstance(v, str) for v in scope.values()):
        raise LibraryError(f"{where}: 'scope' values must be strings")
    label_id = item["id"]
    try:
        return Label(
            id=label_id,
            name=item.get("name", label_id),
            disposition=item["disposition"],
            severity=severity,
            descriptions=tuple(d.strip() for d in descriptions),
            threshold=None if threshold is None else float(threshold),
            scope=dict(scope),
            examples=_examples_from_list(item.get("examples"), where, base_dir),
        )
    except LibraryError as exc:  # the label's own message names it again: drop that, `where` has it
        message = str(exc)
        for prefix in (f"label {label_id!r}: ", f"label {label_id!r} "):
            message = message.removeprefix(prefix)
        raise LibraryError(f"{where}: {message}") from None


def _examples_from_list(raw: Any, where: str, base_dir: Path | None) -> tuple[Example, ...]:
    """Format 2 `examples:` entries: a path string, or {path, reason?, box?}; paths stay under the file's folder."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise LibraryError(f"{where}: 'examples' must be a list of paths or {{path, reason, box}} mappings")
    out = []
    for i, entry in enumerate(raw):
        at = f"{where}: examples[{i}]"
        entry = {"path": entry} if isinstance(entry, str) else entry
        if (
            not isinstance(entry, dict)
            or set(entry) - {"path", "reason", "box"}
            or not isinstance(entry.get("path"), str)
        ):
            raise LibraryError(f"{at}: expected a path string or a mapping with 'path' and optional 'reason', 'box'")
        rel = Path(entry["path"])
        # A shared library file must not reach outside its own folder (no absolute paths, no '..').
        if not entry["path"].strip() or rel.is_absolute() or ".." in rel.parts:
            raise LibraryError(f"{at}: path {entry['path']!r} must be relative to the library file, without '..'")
        box = entry.get("box")
        if box is not None and (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
        ):
            raise LibraryError(f"{at}: 'box' must be four whole pixel numbers [x0, y0, x1, y1]")
        reason = entry.get("reason", "")
        if not isinstance(reason, str):
            raise LibraryError(f"{at}: 'reason' must be text")
        try:
            out.append(
                Example(
                    path=str(base_dir / rel) if base_dir is not None else str(rel),
                    reason=reason.strip(),
                    box=None if box is None else tuple(box),
                )
            )
        except LibraryError as exc:
            raise LibraryError(f"{at}: {exc}") from None
    return tuple(out)


# A library is a few hundred labels at most; a bigger file is refused before it is parsed.
MAX_LIBRARY_BYTES = 1024 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader without anchors and aliases: nested aliases expand exponentially (billion laughs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a library file", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def load_library(path: str | Path) -> Library:
    """Read a library YAML file (safe loader, no aliases, at most MAX_LIBRARY_BYTES)."""
    return library_from_dict(read_library_document(path), str(path), base_dir=Path(path).resolve().parent)


def read_library_document(path: str | Path) -> Any:
    """The parsed YAML of a library file, not yet validated; LibraryError if unreadable or not YAML."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_LIBRARY_BYTES:
            raise LibraryError(f"library file {path} is over {MAX_LIBRARY_BYTES // 1024} KiB; a library is far smaller")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LibraryError(f"library file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LibraryError(f"cannot read library file {path}: {exc}") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass: no Python objects
    except yaml.YAMLError as exc:
        raise LibraryError(f"library file {path} is not valid YAML: {exc}") from None


def library_to_dict(library: Library) -> dict[str, Any]:
    """The YAML document for a library (inverse of library_from_dict)."""
    labels = []
    for label in library.labels:
        item: dict[str, Any] = {
            "id": label.id,
            "name": label.name,
            "disposition": label.disposition,
            "severity": label.severity,
        }
        if label.threshold is not None:
            item["threshold"] = label.threshold
        if label.scope:
            item["scope"] = dict(label.scope)
        if label.descriptions:
            item["descriptions"] = list(label.descriptions)
        if label.examples:
            item["examples"] = [_example_entry(example) for example in label.examples]
        labels.append(item)
    # Format 1 stays format 1 (older stations read it); examples need format 2.
    version = 2 if any(label.examples for label in library.labels) else 1
    doc: dict[str, Any] = {"format": version, "name": library.name}
    if library.description:
        doc["description"] = library.description
    if library.thresholds_model:
        doc["thresholds_model"] = library.thresholds_model
    doc["labels"] = labels
    return doc


def _example_entry(example: Example) -> str | dict[str, Any]:
    if not example.reason and example.box is None:
        return example.path
    entry: dict[str, Any] = {"path": example.path}
    if example.reason:
        entry["reason"] = example.reason
    if example.box is not None:
        entry["box"] = list(example.box)
    return entry


def dump_library(library: Library, path: str | Path) -> None:
    """Write a library YAML file as a new file: an existing file, or a link (even a dangling one), is refused."""
    text = yaml.safe_dump(library_to_dict(library), sort_keys=False, allow_unicode=True, width=100)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        raise LibraryError(f"{path} exists (or is a link); choose a new file name (exports never overwrite)") from None
    except OSError as exc:
        raise LibraryError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def seed_library_dir() -> Path:
    """The folder of the seed libraries shipped with the station (package data: in the wheel too)."""
    return Path(__file__).resolve().parent / "seeds"
