"""`inspector witness serve`: a small HTTP witness with its own storage and key.

It cosigns a station's checkpoint only when it is a consistent extension of the last one it
cosigned for that station, and never a smaller tree after a larger one. The protocol follows
C2SP tlog-witness's add-checkpoint, with one change that fits a hash chain: instead of an RFC
6962 consistency proof the request carries the new leaves (the entry hashes after the old size,
32 bytes each). The witness keeps the compact range of the tree it cosigned (O(log n) hashes),
appends the leaves and compares the root: the same guarantee, no proof machinery on the station,
and the cost is linear in what was added since the last checkpoint (publishing is frequent).

    POST /add-checkpoint   body: "old <size>\n" + one base64 leaf per line + "\n" + signed checkpoint
      200  the cosignature line          409  the witness's size differs from <size> (body: its size)
      400  malformed  403  bad station signature or origin  422  leaves do not give the root / smaller
    GET /checkpoint/<origin>  the latest cosigned checkpoint (station signature + cosignature), 404 if none

A station's first request carries its verifier key in the X-Station-Key header; the origin is
derived from that key (note.station_origin), so no one else can open or extend its log.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from inspector.witness.note import (
    COSIGNATURE,
    ED25519,
    CompactRange,
    NoteError,
    Verifier,
    cosignature_line,
    leaf_hash,
    load_identity,
    parse_note,
    signer_verifier,
    station_origin_of,
)

MAX_BODY = 16 << 20  # 16 MiB: the publisher sends at most PUBLISH_CHUNK leaves per request
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, station_key TEXT NOT NULL, size INTEGER NOT NULL,"
    " nodes TEXT NOT NULL, checkpoint TEXT NOT NULL, updated_at REAL NOT NULL) STRICT"
)


class WitnessError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Witness:
    """The witness's state: one row per station log (its key, size, compact range, last checkpoint)."""

    def __init__(self, db_path: str | Path, name: str = "rankclip-inspector/witness") -> None:
        self.path = Path(db_path)
        self.key = load_identity(self.path.with_name(self.path.name + ".key"), create=True)
        self.name = name
        self.verifier = signer_verifier(self.key, name, COSIGNATURE)
        self._lock = threading.Lock()  # one add-checkpoint at a time: check and store are one step
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def latest(self, origin: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT checkpoint FROM logs WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else str(row[0])

    def add_checkpoint(self, body: str, station_key: str | None) -> str:
        """Check and cosign; returns the cosignature line or raises WitnessError(status)."""
        head, sep, note_text = body.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines[0].startswith("old "):
            raise WitnessError(400, "body must be 'old <size>', the leaves, a blank line, the checkpoint")
        try:
            old = int(lines[0][4:])
            leaves = [base64.b64decode(line, validate=True) for line in lines[1:] if line]
            note = parse_note(note_text)
        except (ValueError, NoteError) as exc:
            raise WitnessError(400, f"malformed request: {exc}") from None
        if any(len(leaf) != 32 for leaf in leaves):
            raise WitnessError(400, "every leaf is a 32-byte entry hash")
        cp = note.checkpoint
        with self._lock:
            row = self._conn.execute(
                "SELECT station_key, size, nodes FROM logs WHERE origin = ?", (cp.origin,)
            ).fetchone()
            if row is None:
                if not station_key:
                    raise WitnessError(403, f"unknown log {cp.origin}: send the station key (X-Station-Key)")
                verifier = _station_verifier(station_key, cp.origin)
                size, tree = 0, CompactRange()
            else:
                verifier = Verifier.parse(row[0])
                size, tree = int(row[1]), CompactRange(int(row[1]), [bytes.fromhex(n) for n in json.loads(row[2])])
            if note.signed_by(verifier) is None:
                raise WitnessError(403, "the checkpoint is not signed by the station's key")
            if old != size:
                raise WitnessError(409, str(size))
            if cp.size < size:
                raise WitnessError(422, f"tree size {cp.size} is smaller than the {size} already cosigned")
            if cp.size - size != len(leaves):
                raise WitnessError(422, f"{len(leaves)} leaves do not extend size {size} to {cp.size}")
            for leaf in leaves:
                tree.append(leaf_hash(leaf.hex()))
            if tree.root() != cp.root:
                raise WitnessError(422, "the leaves do not extend the cosigned tree to this root: history was changed")
            line = cosignature_line(note.body, self.key, self.name, int(time.time()))
            stored = (
                note.body.decode()
                + "\n"
                + "".join(f"\u2014 {n} {base64.b64encode(b).decode()}\n" for n, b in note.signatures)
                + line
            )
            self._conn.execute(
                "INSERT INTO logs (origin, station_key, size, nodes, checkpoint, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, nodes = excluded.nodes,"
                " checkpoint = excluded.checkpoint, updated_at = excluded.updated_at",
                (cp.origin, str(verifier), cp.size, json.dumps([n.hex() for n in tree.nodes]), stored, time.time()),
            )
        return line

    def close(self) -> None:
        self._conn.close()


def _station_verifier(text: str, origin: str) -> Verifier:
    try:
        verifier = Verifier.parse(text)
    except NoteError as exc:
        raise WitnessError(400, str(exc)) from None
    if verifier.sig_type != ED25519 or verifier.name != origin or station_origin_of(verifier.public) != origin:
        raise WitnessError(403, f"the station key does not belong to origin {origin}")
    return verifier


class _Handler(BaseHTTPRequestHandler):
    witness: Witness  # set on the subclass serve() makes

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests and the station's console need no access log

    def _reply(self, status: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        prefix = "/checkpoint/"
        if not self.path.startswith(prefix):
            return self._reply(404, "unknown path\n")
        found = self.witness.latest(urllib.parse.unquote(self.path[len(prefix) :]))
        self._reply(200, found) if found else self._reply(404, "no checkpoint for this log\n")

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            return self._reply(404, "unknown path\n")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._reply(400, f"body must be 1..{MAX_BODY} bytes\n")
        try:
            line = self.witness.add_checkpoint(
                self.rfile.read(length).decode("utf-8"), self.headers.get("X-Station-Key")
            )
        except WitnessError as exc:
            return self._reply(exc.status, f"{exc}\n", "text/x.tlog.size" if exc.status == 409 else "text/plain")
        except (UnicodeDecodeError, NoteError) as exc:
            return self._reply(400, f"{exc}\n")
        self._reply(200, line)


def make_server(db_path: str | Path, host: str, port: int) -> tuple[ThreadingHTTPServer, Witness]:
    """A witness HTTP server bound to host:port (port 0: any free one); call serve_forever() on it."""
    witness = Witness(db_path)
    handler = type("WitnessHandler", (_Handler,), {"witness": witness})
    return ThreadingHTTPServer((host, port), handler), witness
