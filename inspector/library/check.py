"""`inspector library check`: every problem of every library file, and each label by number and name.

load_library stops at the first problem, which is right for an import; a check reports them all,
so that one pass over a file (or a folder of files) fixes everything it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.errors import LibraryError
from inspector.library.examples import read_example
from inspector.library.labels import Library, label_from_dict, library_header, read_library_document


@dataclass(frozen=True)
class LibraryCheck:
    """One file's outcome: the library (None when it has problems) and each problem, one line each."""

    path: str
    library: Library | None
    problems: tuple[str, ...]
    examples: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def library_problems(data: Any, source: str, base_dir: Path | None = None) -> tuple[Library | None, list[str]]:
    """The Library and no problems, or None and every problem found (each label is checked on its own)."""
    try:
        version, name, description, raw = library_header(data, source)
    except LibraryError as exc:
        return None, [str(exc)]
    labels, problems = [], []
    for position, item in enumerate(raw, 1):
        try:
            labels.append(label_from_dict(item, source, position, version, base_dir))
        except LibraryError as exc:
            problems.append(str(exc))
    if problems and not labels:
        return None, problems
    try:  # across labels: none at all, or an id used twice
        library = Library(
            name=name, labels=tuple(labels), description=description, thresholds_model=data.get("thresholds_model", "")
        )
    except LibraryError as exc:
        return None, [*problems, f"{source}: {exc}"]
    return (None, problems) if problems else (library, [])


def check_library_file(path: str | Path) -> LibraryCheck:
    """Validate one library file and decode each of its example images with the safe decoder."""
    try:
        data = read_library_document(path)
    except LibraryError as exc:
        return LibraryCheck(str(path), None, (str(exc),))
    library, problems = library_problems(data, str(path), Path(path).resolve().parent)
    examples = 0
    for label in library.labels if library is not None else ():
        for example in label.examples:
            try:
                read_example(example, label.id)
                examples += 1
            except LibraryError as exc:
                problems.append(f"{path}: {exc}")
    return LibraryCheck(str(path), None if problems else library, tuple(problems), examples)


def label_table(library: Library) -> list[str]:
    """One line per label, numbered from 1 as in the file, with its name and counts."""
    width = max(4, *(len(label.id) for label in library.labels)) + 2
    name_width = max(6, *(len(label.name) for label in library.labels)) + 2
    lines = [
        f"  {'#':>3}  {'id':<{width}}{'name':<{name_width}}{'disposition':<13}{'severity':>8}"
        f"{'descriptions':>14}{'examples':>10}"
    ]
    for position, label in enumerate(library.labels, 1):
        lines.append(
            f"  {position:>3}  {label.id:<{width}}{label.name:<{name_width}}{label.disposition:<13}{label.severity:>8}"
            f"{len(label.descriptions):>14}{len(label.examples):>10}"
        )
    return lines
