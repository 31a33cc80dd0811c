"""Audit export bundles and their offline verifier.

A bundle holds one contiguous chain segment (every chain entry from the first to the last whose
time falls in [from, to)): chain.jsonl, per table a JSONL file (all fields, with seq and hash)
and an RFC 4180 CSV (spreadsheet formulas neutralised), the images, the anchor file, and
manifest.json with the SHA-256 of every file, HMAC'ed with the station key and signed with the
station's Ed25519 identity (manifest.sig). Every file name is
generated here; nothing stored in the database becomes a path.

A selection (the audit filter's inspections, their decisions, its events: inspector.store.export_filter)
exports only those rows of the three record lists, with the whole chain segment around them: every
chain entry is there, so links still verify, and the rows left out are named in the signed manifest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.errors import InspectorError
from inspector.store.account_state import admin_set_flags
from inspector.store.anchor import AnchorError, anchor_record
from inspector.store.bundle_images import missing_images, referenced_images
from inspector.store.chain import RECORD_TABLES, canonical, entry_hash
from inspector.store.csv_cells import csv_bytes, neutralise  # noqa: F401  # neutralise: re-exported
from inspector.store.database import StationDB, event_row, parse_time, utc_stamp
from inspector.store.export_segment import selected_bounds
from inspector.store.retention import locate_image
from inspector.store.states import inspection_states
from inspector.store.users import Session, authorize
from inspector.witness.note import Verifier, load_identity, signer_verifier, station_origin

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MANIFEST = "manifest.json"
# The station's Ed25519 signature over SHA-256(manifest.json): anyone with the station's public key
# (`inspector log identity`) can check a bundle; the manifest lists every other file's SHA-256.
SIGNATURE = "manifest.sig"
_SIGNED_TAG = "rankclip-inspector/export/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"^(images/[0-9a-f]{64}\.png|[a-z_]+\.(csv|jsonl|json))$")


class ExportError(InspectorError):
    """An export cannot be written (existing folder, unsafe path) or read back."""


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    out_dir: Path
    rows: int
    first_seq: int | None
    last_seq: int | None
    images: int
    manifest_sha256: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportReport:
    """verify_export's answer: ok, or every problem found."""

    ok: bool
    rows: int
    problems: tuple[str, ...]
    hmac_checked: bool
    signed_by: str = ""  # the station key name whose signature verified; "" when not checked

    @property
    def authenticated(self) -> bool:
        """Intact and made by the expected station (its signature, or the HMAC with its secret key)."""
        return self.ok and (bool(self.signed_by) or self.hmac_checked)

    def __str__(self) -> str:
        if self.signed_by:
            who = f"signed by station {self.signed_by}"
        elif self.hmac_checked:
            who = "manifest HMAC checked"
        else:
            who = (
                "NOT authenticated: give the station's public key (--station-key) to check its signature; without"
                " it anyone could have rewritten the bundle and recomputed its hashes"
            )
        if self.ok:
            return f"bundle intact: {self.rows} rows, chain links and file sums verified; {who}"
        return "bundle NOT intact:\n  " + "\n  ".join(self.problems)


def _write_new(root: Path, name: str, data: bytes) -> str:
    """Create root/name exclusively (no overwrite, no symlink followed); returns the SHA-256 of data."""
    if not _SAFE_NAME.match(name) and name != SIGNATURE:
        raise ExportError(f"refusing to write {name!r}: not a generated bundle name")
    target = root / name
    if not target.parent.resolve().is_relative_to(root):
        raise ExportError(f"refusing to write {target}: it resolves outside {root}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _manifest_mac(key: bytes, manifest: dict[str, Any]) -> str:
    body = canonical({k: v for k, v in manifest.items() if k != "hmac"})
    return hmac.new(key, b"rankclip-inspector/manifest/v1\x00" + body, "sha256").hexdigest()


def export_bundle(
    sdb: StationDB,
    from_ts: datetime | str,
    to_ts: datetime | str,
    out_dir: str | Path,
    user: Session,
    selection: Mapping[str, Collection[int]] | None = None,
) -> ExportSummary:
    """Write the records of [from_ts, to_ts) to a new folder out_dir; an 'export' event records it.

    selection ({table: row ids} for inspections, decisions, events): only those rows of these tables,
    in the chain segment that spans them (the period then only names what was asked for)."""
    authorize(sdb, user, "export", "export")
    lo, hi = parse_time(from_ts), parse_time(to_ts)
    out = Path(out_dir).absolute()
    if out.exists() or out.is_symlink():
        raise ExportError(f"{out} exists; exports never overwrite or mix with other files: name a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(mode=0o700)  # raises if someone created it meanwhile; private: it holds the records
    root = out.resolve()
    sdb.conn.execute("BEGIN")  # one read snapshot: the segment and its rows agree
    try:
        bounds = (
            sdb.conn.execute("SELECT MIN(seq), MAX(seq) FROM chain WHERE ts >= ? AND ts < ?", (lo, hi)).fetchone()
            if selection is None
            else selected_bounds(sdb.conn, selection)
        )
        first, last = (bounds[0], bounds[1]) if bounds[0] is not None else (1, 0)
        cols = ("seq", "table", "row_id", "ts", "prev_hash", "hash")
        chain = [
            dict(zip(cols, r))
            for r in sdb.conn.execute(
                "SELECT seq, tbl, row_id, ts, prev_hash, hash FROM chain WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (first, last),
            )
        ]
        tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
        for table in RECORD_TABLES:
            cur = sdb.conn.execute(
                'SELECT * FROM "' + table + '" WHERE id IN (SELECT row_id FROM chain WHERE tbl = ?'
                " AND seq BETWEEN ? AND ?) ORDER BY id",
                (table, first, last),
            )
            chosen = None if selection is None else selection.get(table)
            tables[table] = (
                [d[0] for d in cur.description],
                [list(r) for r in cur if chosen is None or r[0] in chosen],
            )
        # Derived at export time (answered / pending_review / passed / open), beside the chained rows.
        states = inspection_states(sdb.conn, (r[0] for r in tables["inspections"][1]))
        flags = admin_set_flags(sdb.conn, (r[0] for r in tables["decisions"][1]))  # derived from the chain too
    finally:
        sdb.conn.execute("COMMIT")
    links = {(e["table"], e["row_id"]): e for e in chain}
    files: dict[str, str] = {}
    warnings: list[str] = []
    files["chain.jsonl"] = _write_new(root, "chain.jsonl", b"".join(canonical(e) + b"\n" for e in chain))
    for table, (columns, rows) in tables.items():
        lines = []
        for values in rows:
            entry = links[(table, values[0])]
            lines.append(
                canonical({"seq": entry["seq"], "hash": entry["hash"], "row": dict(zip(columns, values))}) + b"\n"
            )
        files[f"{table}.jsonl"] = _write_new(root, f"{table}.jsonl", b"".join(lines))
        csv_rows = [[*values, links[(table, values[0])]["seq"], links[(table, values[0])]["hash"]] for values in rows]
        csv_data = csv_bytes([*columns, "chain_seq", "chain_hash"], csv_rows)
        files[f"{table}.csv"] = _write_new(root, f"{table}.csv", csv_data)
    files["inspection_states.csv"] = _write_new(
        root,
        "inspection_states.csv",
        csv_bytes(["inspection_id", "state"], [[i, s] for i, s in sorted(states.items())]),
    )
    flag_rows = [[i, f] for i, f in sorted(flags.items())]
    files["decision_flags.csv"] = _write_new(
        root, "decision_flags.csv", csv_bytes(["decision_id", "admin_set_password"], flag_rows)
    )
    (root / "images").mkdir(mode=0o700)
    for sha in sorted(referenced_images(tables)):  # frames and library examples (bundle_images)
        source = locate_image(sdb, str(sha)) if _HEX64.match(str(sha)) else None  # archived: from the archive
        if source is None or not source.is_file():
            warnings.append(f"image {str(sha)[:80]!r} is not a valid stored image; not exported")
            continue
        files[f"images/{sha}.png"] = _write_new(root, f"images/{sha}.png", source.read_bytes())
    try:  # the current anchor as one JSON record (the station's file holds two slots)
        anchor = anchor_record(sdb.anchor_path, sdb.key)
    except AnchorError as exc:
        anchor = None
        warnings.append(f"anchor not exported: {exc}")
    if anchor is not None:
        files["anchor.json"] = _write_new(root, "anchor.json", anchor)
    ends = (chain[0], chain[-1]) if chain else ({}, {})
    segment = {
        "first_seq": ends[0].get("seq"),
        "last_seq": ends[1].get("seq"),
        "prev_hash": ends[0].get("prev_hash"),
        "head_hash": ends[1].get("hash"),
    }
    manifest: dict[str, Any] = {
        "format": 1,
        "created_at": utc_stamp(),
        "created_by": user.name,
        "from": lo,
        "to": hi,
        "rows": len(chain),
        "segment": segment,
        "files": files,
        "warnings": warnings,
    }
    if selection is not None:  # signed with the rest: which rows of the segment were chosen
        manifest["selection"] = {t: sorted(int(i) for i in ids) for t, ids in sorted(selection.items())}
    manifest["hmac"] = _manifest_mac(sdb.key, manifest)
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    manifest_sha = _write_new(root, MANIFEST, manifest_bytes)
    _write_new(root, SIGNATURE, _sign_manifest(load_identity(sdb.identity_path, create=True), manifest_sha))
    with sdb.transaction():
        sdb.append(
            "events",
            event_row(
                "export",
                user.name,
                str(out),
                {
                    "from": lo,
                    "to": hi,
                    "rows": len(chain),
                    "manifest_sha256": manifest_sha,
                    "warnings": len(warnings),
                    **({} if selection is None else {"selected": {t: len(i) for t, i in selection.items()}}),
                },
            ),
        )
    return ExportSummary(
        out,
        len(chain),
        manifest["segment"]["first_seq"],
        manifest["segment"]["last_seq"],
        sum(1 for n in files if n.startswith("images/")),
        manifest_sha,
        tuple(warnings),
    )


def _sign_manifest(identity: Ed25519PrivateKey, manifest_sha: str) -> bytes:
    """A signed note: tag and the manifest's SHA-256, signed by the station (key name: its origin)."""
    origin = station_origin(identity)
    body = f"{_SIGNED_TAG}\n{manifest_sha}\n".encode()
    verifier = signer_verifier(identity, origin)
    blob = base64.b64encode(verifier.id + identity.sign(body)).decode()
    return body + f"\n\u2014 {origin} {blob}\n".encode()


def _check_signature(root: Path, manifest_bytes: bytes, station_key: str, problems: list[str]) -> str:
    """The station key's name if manifest.sig is its signature over this manifest; else a problem is added."""
    verifier = Verifier.parse(station_key)
    try:
        text = (root / SIGNATURE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        problems.append(f"{SIGNATURE} is missing: the bundle is not signed (or was made before bundles were signed)")
        return ""
    expected = f"{_SIGNED_TAG}\n{hashlib.sha256(manifest_bytes).hexdigest()}\n".encode()
    for line in text.split("\n\n", 1)[-1].splitlines():
        name, _, b64 = line.removeprefix("\u2014 ").rpartition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except ValueError:
            continue
        if name == verifier.name and blob[:4] == verifier.id and verifier.verify(expected, blob[4:]):
            if text.startswith(expected.decode() + "\n"):
                return verifier.name
    problems.append(
        f"{SIGNATURE} is not a signature by {verifier.name} over this manifest: the bundle was changed"
        " or comes from another station"
    )
    return ""


def verify_export(bundle_dir: str | Path, key: bytes | None = None, station_key: str | None = None) -> ExportReport:
    """Check a bundle offline: file sums, nothing extra, chain links, rows against their hashes, images.

    station_key (a verifier key, `inspector log identity`) checks the station's signature: the
    bundle is then authenticated without the station's secret. key checks the older HMAC.
    """
    root = Path(bundle_dir)
    try:
        manifest_bytes = (root / MANIFEST).read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        files: dict[str, str] = dict(manifest["files"])
        segment = manifest["segment"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{root} is not an export bundle ({exc}); give the folder that holds manifest.json") from None
    problems: list[str] = []
    signed_by = _check_signature(root, manifest_bytes, station_key, problems) if station_key else ""
    if key is not None and not hmac.compare_digest(str(manifest.get("hmac", "")), _manifest_mac(key, manifest)):
        problems.append("manifest.json fails its HMAC: it was edited or made with another station key")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()} - {
        MANIFEST,
        SIGNATURE,
    }
    for name in sorted(present - set(files)):
        problems.append(f"{name} is not listed in the manifest (added after export)")
    for name, digest in sorted(files.items()):
        path = root / name
        if not _SAFE_NAME.match(name) or path.is_symlink():
            problems.append(f"manifest lists {name!r}, which is not a bundle file name")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name} was modified: its SHA-256 differs from the manifest")
        elif name.startswith("images/") and digest != name[len("images/") : -len(".png")]:
            problems.append(f"{name} does not hash to its name")
    try:
        rows = _check_records(root, segment, problems, manifest.get("selection"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(f"the bundle's records are malformed ({exc!r})")
        rows = 0
    return ExportReport(not problems, rows, tuple(problems), key is not None, signed_by)


def _read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is unreadable: {exc}")
        return []


def _check_records(
    root: Path, segment: dict[str, Any], problems: list[str], selection: dict[str, list[int]] | None = None
) -> int:
    """Chain links from the segment's prev_hash to its head, and every row against its entry's hash
    (a selection's rows left out by the manifest are not missing; any other row is)."""
    chosen = {t: set(ids) for t, ids in (selection or {}).items()}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for table in RECORD_TABLES:
        if not (root / f"{table}.jsonl").exists():
            # A bundle written before this table existed. A listed file that is missing was reported
            # above, and a chain entry pointing into an absent table is reported below as a missing row.
            continue
        for item in _read_jsonl(root / f"{table}.jsonl", problems):
            rows[(table, item["row"]["id"])] = item
    prev, expected = segment.get("prev_hash"), segment.get("first_seq")
    chain = _read_jsonl(root / "chain.jsonl", problems)
    for e in chain:
        item = rows.pop((e["table"], e["row_id"]), None)
        where = f"seq {e['seq']} ({e['table']} row {e['row_id']})"
        if e["seq"] != expected or e["prev_hash"] != prev:
            problems.append(f"{where}: does not link to the previous entry (entries removed or reordered)")
        elif item is None and e["table"] in chosen and e["row_id"] not in chosen[e["table"]]:
            pass  # left out by the selection the signed manifest names
        elif item is None:
            problems.append(f"{where}: the row is missing from {e['table']}.jsonl")
        elif (
            item["hash"] != e["hash"]
            or entry_hash(e["seq"], e["table"], e["row_id"], e["ts"], item["row"], prev) != e["hash"]
        ):
            problems.append(f"{where}: the row does not match its chain hash (changed after it was written)")
        prev, expected = e["hash"], e["seq"] + 1
    if chain and prev != segment.get("head_hash"):
        problems.append("the chain segment does not end at the manifest's head hash (entries cut off)")
    for table, row_id in sorted(rows):
        problems.append(f"{table} row {row_id} is not in the chain segment")
    for table, ids in chosen.items():
        present = {item["row"]["id"] for item in _read_jsonl(root / f"{table}.jsonl", [])}
        if missing := sorted(ids - present):
            problems.append(f"{table} rows {missing[:20]} are in the manifest's selection but not in the bundle")
    problems.extend(missing_images(root))
    anchor = root / "anchor.json"
    if anchor.is_file():  # the station's checkpoint: where it falls inside the segment it must agree
        seq, digest = (lambda a: (a.get("seq"), a.get("hash")))(json.loads(anchor.read_text(encoding="utf-8")))
        if any(e["seq"] == seq and e["hash"] != digest for e in chain):
            problems.append(f"seq {seq} differs from the anchor's hash: the chain was rewritten")
    return len(chain)
