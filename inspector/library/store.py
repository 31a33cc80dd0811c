"""The description library in the station database: every change is a new, chained version.

A version is a full snapshot of the labels and their descriptions, each flagged active or
retired: nothing is deleted, so an old inspection's library version can always be shown as it
was. The library in force is the latest version with its active labels and descriptions.
The MAC'ed text-embedding cache it also carries lives in inspector.library.embedding_cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspector.errors import LibraryError
from inspector.library.embedding_cache import EmbeddingCache
from inspector.library.labels import Example, Label, Library
from inspector.library.snapshot import LABEL_FIELDS, Snapshot, StoredLabel, from_label
from inspector.store.database import StationDB, event_row
from inspector.store.users import Session, authorize

Step = Callable[[Snapshot], Snapshot]  # one change of the library, applied to the version in force


class LibraryStore(EmbeddingCache):
    """Versioned library over a StationDB; edits need the 'edit_library' permission (QA).

    It also carries the text-embedding cache (get_cached_embeddings / put_embeddings)."""

    def __init__(self, sdb: StationDB) -> None:
        self.sdb = sdb

    def current_version(self) -> int:
        """The version in force; 0 when no library was ever stored."""
        rows = list(self.sdb.db.query("SELECT MAX(id) AS v FROM library_versions"))
        return int(rows[0]["v"] or 0)

    def in_force(self) -> tuple[int, Library]:
        """(version, Library) read in one snapshot: what a ranking should use and record."""
        self.sdb.conn.execute("BEGIN")
        try:
            version = self.current_version()
            return version, self.library(version)
        finally:
            self.sdb.conn.execute("COMMIT")

    def library(self, version: int | None = None) -> Library:
        """The active labels and descriptions of a version (default: in force)."""
        version = self.current_version() if version is None else version
        name, description = self._meta(version)
        labels = tuple(s.to_label() for s in self.labels(version) if not s.retired)
        return Library(name=name, labels=labels, description=description)

    def labels(self, version: int | None = None) -> list[StoredLabel]:
        """Every label of a version, retired ones included, in order."""
        version = self.current_version() if version is None else version
        if version == 0:
            return []
        self._meta(version)  # refuses a version that does not exist
        texts: dict[str, list[tuple[str, bool]]] = {}
        for row in self.sdb.db.query(
            "SELECT label_id, text, retired FROM library_descriptions WHERE version = ? ORDER BY position", [version]
        ):
            texts.setdefault(row["label_id"], []).append((row["text"], bool(row["retired"])))
        examples = self._examples(version)
        return [
            StoredLabel(
                r["label_id"],
                r["name"],
                r["disposition"],
                r["severity"],
                r["threshold"],
                json.loads(r["scope"]),
                bool(r["retired"]),
                tuple(texts.get(r["label_id"], ())),
                tuple(examples.get(r["label_id"], ())),
            )
            for r in self.sdb.db.query("SELECT * FROM library_labels WHERE version = ? ORDER BY position", [version])
        ]

    def _examples(self, version: int) -> dict[str, list[tuple[Example, bool]]]:
        found: dict[str, list[tuple[Example, bool]]] = {}
        for row in self.sdb.db.query(
            "SELECT label_id, sha256, reason, box, retired FROM library_examples WHERE version = ? ORDER BY position",
            [version],
        ):
            box = json.loads(row["box"])
            example = Example(sha256=row["sha256"], reason=row["reason"], box=tuple(box) if box else None)
            found.setdefault(row["label_id"], []).append((example, bool(row["retired"])))
        return found

    def history(self) -> list[dict[str, Any]]:
        """Every version: id, recorded_at, name, user, reason (oldest first)."""
        return list(
            self.sdb.db.query("SELECT id AS version, recorded_at, name, user, reason FROM library_versions ORDER BY id")
        )

    def import_library(self, library: Library, user: Session, reason: str) -> int:
        """Make a YAML library the one in force; labels, descriptions and examples it lacks are retired.

        Its example files are decoded and stored first (content-addressed; a bad file refuses the import)."""
        from inspector.library.examples import import_examples  # examples -> decision_log -> this module

        authorize(self.sdb, user, "edit_library", "library_import")  # before any image is written
        library = import_examples(library, self.sdb.image_root)

        def change(old: Snapshot) -> Snapshot:
            new = {label.id: from_label(label, old.get(label.id)) for label in library.labels}
            for label_id, stored in old.items():
                if label_id not in new:
                    new[label_id] = stored.retired_all()
            return new

        return self._change(user, reason, "import", change, (library.name, library.description))

    def seed_if_empty(self, library: Library, source: str) -> int:
        """First run only: store the configured seed library as version 1 (a chained event says
        where it came from). Later changes go through QA; returns the version in force."""
        if not self.current_version() and any(label.examples for label in library.labels):
            from inspector.library.examples import import_examples

            library = import_examples(library, self.sdb.image_root)
        with self.sdb.transaction():
            if self.current_version():
                return self.current_version()
            v = self._write_version(
                library.name,
                library.description,
                "system",
                f"seeded from {source}",
                {label.id: from_label(label, None) for label in library.labels},
            )
            self.sdb.append(
                "events", event_row("library_seeded", "system", f"library v{v}", {"version": v, "source": source})
            )
        return v

    def add_label(self, label: Label, user: Session, reason: str) -> int:
        """Add a new label (or bring a retired one back with these fields and descriptions)."""
        return self._change(user, reason, "add_label", self.step("add_label", label.id, label=label))

    def add_description(self, label_id: str, text: str, user: Session, reason: str) -> int:
        """Add a description to an active label (a retired identical text is brought back)."""
        return self._change(user, reason, "add_description", self.step("add_description", label_id, text=text))

    def update_label(self, label_id: str, changes: Mapping[str, Any], user: Session, reason: str) -> int:
        """Change an active label's name, disposition, severity or threshold; descriptions stay."""
        return self._change(user, reason, "update_label", self.step("update_label", label_id, changes=changes))

    def retire_label(self, label_id: str, user: Session, reason: str) -> int:
        """Retire a label with its descriptions and examples; it stays in the history."""
        return self._change(user, reason, "retire_label", self.step("retire_label", label_id))

    def add_example(self, label_id: str, example: Example, user: Session, reason: str) -> int:
        """Add a stored example (by its SHA-256, see inspector.library.examples) to an active label."""
        return self._change(user, reason, "add_example", self.step("add_example", label_id, example=example))

    def retire_example(self, label_id: str, sha256: str, user: Session, reason: str) -> int:
        """Retire one example of a label (the image stays in the store and in the history)."""
        step = self.step("retire_example", label_id, example=Example(sha256=sha256))
        return self._change(user, reason, "retire_example", step)

    def retire_description(self, label_id: str, text: str, user: Session, reason: str) -> int:
        """Retire one description of a label (not its last: retire the label instead)."""
        return self._change(user, reason, "retire_description", self.step("retire_description", label_id, text=text))

    def publish_steps(
        self, steps: Sequence[Step], user: Session, reason: str, detail: Mapping[str, Any] | None = None
    ) -> int:
        """Several changes (from `step`) recorded as ONE new version, applied in order; all or nothing."""
        if not steps:
            raise LibraryError("nothing to publish; stage a change first")

        def change(old: Snapshot) -> Snapshot:
            for step in steps:
                old = step(old)
            return old

        return self._change(user, reason, "publish_draft", change, detail=detail)

    def step(
        self,
        action: str,
        label_id: str,
        *,
        text: str = "",
        label: Label | None = None,
        changes: Mapping[str, Any] | None = None,
        example: Example | None = None,
    ) -> Step:
        """One change as a Snapshot -> Snapshot function (checked when applied); `publish_steps` records several."""
        if action == "add_label":
            return lambda old: _add_label(old, label)
        if action == "add_description":
            return lambda old: _add_description(old, label_id, text.strip())
        if action == "retire_description":
            return lambda old: _retire_description(old, label_id, text)
        if action == "retire_label":
            return lambda old: {**old, label_id: _active(old, label_id).retired_all()}
        if action == "update_label":
            unknown = sorted(set(changes or {}) - set(LABEL_FIELDS))
            if unknown:
                raise LibraryError(
                    f"cannot change {', '.join(unknown)}; a label's editable fields are {', '.join(LABEL_FIELDS)}"
                )
            return lambda old: {**old, label_id: replace(_active(old, label_id), **dict(changes or {}))}
        if action == "add_example":
            if not example.sha256:
                raise LibraryError(
                    "store the example image first (inspector.library.examples); the library names it by hash"
                )
            from inspector.library.examples import read_example

            read_example(example, label_id, self.sdb.image_root)  # the image is there, decodes, and the box fits
            return lambda old: _add_example(old, label_id, example)
        if action == "retire_example":
            return lambda old: _retire_example(old, label_id, example.sha256)
        raise LibraryError(f"unknown library change {action!r}")

    def export_yaml(self, path: str | Path, version: int | None = None) -> Path:
        """Write a version (default: in force) as library YAML, its examples in FILE.examples/; never overwrites."""
        from inspector.library.examples import export_library

        return export_library(self.library(version), Path(path), self.sdb.image_root)

    def _meta(self, version: int) -> tuple[str, str]:
        rows = list(self.sdb.db.query("SELECT name, description FROM library_versions WHERE id = ?", [version]))
        if not rows:
            raise LibraryError(
                f"library version {version} does not exist; import a library with `inspector library import FILE`"
            )
        return rows[0]["name"], rows[0]["description"]

    def _change(
        self,
        user: Session,
        reason: str,
        action: str,
        change: Callable[[Snapshot], Snapshot],
        meta: tuple[str, str] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        authorize(self.sdb, user, "edit_library", f"library_{action}")
        if not reason.strip():
            raise LibraryError("every library change needs a reason (who, when and why are recorded)")
        with self.sdb.transaction():
            version = self.current_version()
            old = {s.id: s for s in self.labels(version)}
            old_meta = self._meta(version) if version else ("station", "")
            new, new_meta = change(old), meta or old_meta
            if new == old and new_meta == old_meta:
                raise LibraryError("the change leaves the library as it is; nothing was recorded")
            v = self._write_version(new_meta[0], new_meta[1], user.name, reason.strip(), new)
            self.sdb.append(
                "events",
                event_row(
                    "library_edit",
                    user.name,
                    f"library v{v}",
                    {"action": action, "version": v, "reason": reason.strip(), **(detail or {})},
                ),
            )
        return v

    def _write_version(self, name: str, description: str, user: str | None, reason: str, new: Snapshot) -> int:
        """Append a full snapshot as a new version; inside a transaction."""
        active = tuple(s.to_label() for s in new.values() if not s.retired)
        Library(name=name, labels=active, description=description)  # validates before writing
        if any(not e.sha256 for s in new.values() for e, _ in s.examples):
            raise LibraryError("an example must be stored in the station (by hash) before a library version names it")
        v = self.sdb.append(
            "library_versions", {"name": name, "description": description, "user": user, "reason": reason}
        )
        for position, s in enumerate(new.values()):
            self.sdb.append(
                "library_labels",
                {
                    "version": v,
                    "label_id": s.id,
                    "position": position,
                    "name": s.name,
                    "disposition": s.disposition,
                    "severity": s.severity,
                    "threshold": s.threshold,
                    "scope": json.dumps(s.scope, sort_keys=True),
                    "retired": int(s.retired),
                },
            )
            for i, (text, retired) in enumerate(s.descriptions):
                self.sdb.append(
                    "library_descriptions",
                    {"version": v, "label_id": s.id, "position": i, "text": text, "retired": int(retired)},
                )
            for i, (example, retired) in enumerate(s.examples):
                self.sdb.append(
                    "library_examples",
                    {
                        "version": v,
                        "label_id": s.id,
                        "position": i,
                        "sha256": example.sha256,
                        "reason": example.reason,
                        "box": json.dumps(list(example.box) if example.box else None),
                        "retired": int(retired),
                    },
                )
        return v


def _active(old: Snapshot, label_id: str) -> StoredLabel:
    if label_id not in old or old[label_id].retired:
        active = ", ".join(k for k, v in old.items() if not v.retired)
        raise LibraryError(f"there is no active label {label_id!r}; active labels: {active or 'none'}")
    return old[label_id]


def _add_label(old: Snapshot, label: Label) -> Snapshot:
    if label.id in old and not old[label.id].retired:
        raise LibraryError(f"label {label.id!r} exists; add descriptions to it or retire it first")
    return {**old, label.id: from_label(label, old.get(label.id))}


def _add_description(old: Snapshot, label_id: str, text: str) -> Snapshot:
    stored = _active(old, label_id)
    texts = [(t, r) for t, r in stored.descriptions if t != text] + [(text, False)]
    return {**old, label_id: replace(stored, descriptions=tuple(texts))}


def _retire_description(old: Snapshot, label_id: str, text: str) -> Snapshot:
    stored = _active(old, label_id)
    if text not in stored.active_descriptions:
        raise LibraryError(f"label {label_id!r} has no active description {text!r}")
    if len(stored.active_descriptions) == 1 and not stored.active_examples:
        raise LibraryError(f"{text!r} is the last description of label {label_id!r}; retire the label instead")
    return {**old, label_id: replace(stored, descriptions=tuple((t, r or t == text) for t, r in stored.descriptions))}


def _add_example(old: Snapshot, label_id: str, example: Example) -> Snapshot:
    stored = _active(old, label_id)
    kept = [(e, r) for e, r in stored.examples if e.sha256 != example.sha256]
    return {**old, label_id: replace(stored, examples=(*kept, (example, False)))}


def _retire_example(old: Snapshot, label_id: str, sha256: str) -> Snapshot:
    stored = _active(old, label_id)
    if sha256 not in {e.sha256 for e in stored.active_examples}:
        raise LibraryError(f"label {label_id!r} has no active example {sha256[:12]!r}")
    return {**old, label_id: replace(stored, examples=tuple((e, r or e.sha256 == sha256) for e, r in stored.examples))}
