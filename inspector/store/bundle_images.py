"""Which images an audit export bundle carries and must carry (inspector.store.export).

Every exported inspection's frame and every exported library example's image (library format 2):
a bundle then shows what a part was ranked against, not only what it looked like, and a station
that learns from the bundle (inspector.learning.sources) has the examples' pixels too. Images are
named by their SHA-256 and listed in the signed manifest like every other file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# record table -> the column naming a stored image
IMAGE_COLUMNS: dict[str, str] = {"inspections": "image_sha256", "library_examples": "sha256"}


def referenced_images(tables: dict[str, tuple[list[str], list[list[Any]]]]) -> set[str]:
    """The image hashes the exported rows name ({table: (columns, rows)}, as export_bundle reads them)."""
    found: set[str] = set()
    for table, column in IMAGE_COLUMNS.items():
        if table in tables:
            columns, rows = tables[table]
            found |= {str(r[columns.index(column)]) for r in rows if r[columns.index(column)]}
    return found


def missing_images(root: Path) -> list[str]:
    """One problem line per exported row whose image is not in the bundle's images/ folder."""
    problems = []
    for table, column in IMAGE_COLUMNS.items():
        path = root / f"{table}.jsonl"
        if not path.is_file():  # older bundles have no library_examples; a listed file missing is reported elsewhere
            continue
        try:
            items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        except (OSError, ValueError):
            continue  # reported as unreadable by the record check
        what = "inspection" if table == "inspections" else "library example row"
        for item in items:
            sha = item["row"].get(column)
            if sha and not (root / "images" / f"{sha}.png").is_file():
                problems.append(f"{what} {item['row']['id']}: image {str(sha)[:80]!r} is missing from the bundle")
    return problems
