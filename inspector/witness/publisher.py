"""The station side of the witness: signed checkpoints published in the background, and the check.

Publisher runs in its own thread with its own read-only connection: a commit only counts itself
(notify_commit, no I/O), so a slow or absent witness never delays inspection. Every `every_commits`
commits or `every_s` seconds it signs a checkpoint of the chain head and sends the witness the
entry hashes it has not seen yet, oldest first, at most PUBLISH_CHUNK per checkpoint: after an
outage it catches up in order. Whatever was committed after the last cosigned checkpoint can be
cut off unseen by the witness: that window is at most every_commits commits or every_s seconds
(plus the time the witness is down).
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from inspector.witness.note import (
    Checkpoint,
    CompactRange,
    NoteError,
    Verifier,
    leaf_hash,
    parse_note,
    sign_checkpoint,
    signer_verifier,
    station_origin,
)

PUBLISH_CHUNK = 50_000  # leaves per request: about 2.2 MB of base64


# The publisher of each database in this process: the other connections a process opens to the same
# database (the live loop's, a worker's) count their commits towards it too.
_RUNNING: dict[Path, Publisher] = {}


def running_publisher(db_path: Path) -> Publisher | None:
    return _RUNNING.get(db_path)


class WitnessUnreachable(Exception):
    """The witness did not answer, or not with what the protocol allows."""


def _http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WitnessUnreachable(f"witness {url} did not answer: {getattr(exc, 'reason', exc)}") from None


def root_at(conn: sqlite3.Connection, size: int, tree: CompactRange | None = None) -> CompactRange:
    """The tree over the first `size` entry hashes, extending `tree` when it is a prefix of it."""
    tree = CompactRange() if tree is None or tree.size > size else tree
    for (digest,) in conn.execute("SELECT hash FROM chain WHERE seq > ? AND seq <= ? ORDER BY seq", (tree.size, size)):
        tree.append(leaf_hash(digest))
    return tree


@dataclass
class PublishState:
    cosigned: int = 0  # the size the witness last cosigned, as far as this station knows
    problem: str = ""  # the last failure, "" after a success


class Publisher:
    """Background checkpoint publishing to one witness (see the module docstring)."""

    def __init__(
        self,
        db_path: Path,
        identity: Ed25519PrivateKey,
        url: str,
        every_commits: int = 100,
        every_s: float = 60.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.db_path, self.identity, self.url = db_path, identity, url.rstrip("/")
        self.every_commits, self.every_s, self.timeout_s = max(1, every_commits), max(0.05, every_s), timeout_s
        self.origin = station_origin(identity)
        self.state = PublishState()
        self._tree = CompactRange()
        self._pending = 0
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="witness-publisher", daemon=True)
        self._thread.start()
        _RUNNING[self.db_path] = self
        return self

    def notify_commit(self) -> None:
        """Called after every COMMIT: counts, and wakes the thread every `every_commits` commits."""
        self._pending += 1
        if self._pending >= self.every_commits:
            self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        if _RUNNING.get(self.db_path) is self:
            del _RUNNING[self.db_path]
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            self._pending = 0
            self.publish()
        self.publish()  # what the last commits added, once more on the way out (bounded by timeout_s)

    def publish(self) -> bool:
        """Publish up to the chain head now; True when the witness has cosigned it. Never raises."""
        with self._lock:
            try:
                self._publish()
            except (WitnessUnreachable, NoteError, sqlite3.Error) as exc:
                self.state.problem = str(exc)
                return False
            self.state.problem = ""
            return True

    def _publish(self) -> None:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            head = int(conn.execute("SELECT IFNULL(MAX(seq), 0) FROM chain").fetchone()[0])
            witness_size = self.state.cosigned
            while witness_size < head:
                target = min(head, witness_size + PUBLISH_CHUNK)
                leaves = [
                    base64.b64encode(bytes.fromhex(d)).decode()
                    for (d,) in conn.execute(
                        "SELECT hash FROM chain WHERE seq > ? AND seq <= ? ORDER BY seq", (witness_size, target)
                    )
                ]
                self._tree = root_at(conn, target, self._tree)
                note = sign_checkpoint(Checkpoint(self.origin, target, self._tree.root()), self.identity)
                body = f"old {witness_size}\n" + "".join(f"{leaf}\n" for leaf in leaves) + "\n" + note
                key = str(signer_verifier(self.identity, self.origin))
                status, text = _http(
                    self.url + "/add-checkpoint",
                    body.encode("utf-8"),
                    {"X-Station-Key": key, "Content-Type": "text/plain"},
                    self.timeout_s,
                )
                if status == 409:  # the witness is elsewhere: resend from its size
                    witness_size = int(text.strip())
                    if witness_size > head:
                        raise WitnessUnreachable(
                            f"the witness has cosigned {witness_size} entries but this chain has {head}: the station"
                            " was rolled back or its tail cut; run `inspector log verify --witness`"
                        )
                    self.state.cosigned = witness_size
                    continue
                if status != 200:
                    raise WitnessUnreachable(f"the witness refused checkpoint {target}: HTTP {status}: {text.strip()}")
                witness_size = self.state.cosigned = target
        finally:
            conn.close()


@dataclass(frozen=True)
class WitnessCheck:
    """What the witness's latest checkpoint says about this chain: ok, tampered, or unchecked (and why)."""

    outcome: str  # "ok" | "tampered" | "unreachable"
    message: str


def check_with_witness(
    conn: sqlite3.Connection, identity: Ed25519PrivateKey, url: str, witness_key: str, timeout_s: float = 10.0
) -> WitnessCheck:
    """Fetch the witness's cosigned checkpoint for this station and compare the local chain with it.

    Call inside the read transaction verify uses, so the chain is one snapshot.
    """
    verifier = Verifier.parse(witness_key)
    origin = station_origin(identity)
    unchecked = (
        "not checked: whether entries were cut from the end or the whole station (database and anchor)"
        " was rolled back to an older copy"
    )
    try:
        status, text = _http(url.rstrip("/") + "/checkpoint/" + urllib.parse.quote(origin, safe=""), timeout=timeout_s)
    except WitnessUnreachable as exc:
        return WitnessCheck("unreachable", f"{exc}; {unchecked}")
    if status == 404:
        return WitnessCheck(
            "unreachable", f"witness {url} holds no checkpoint for {origin} (never published); {unchecked}"
        )
    if status != 200:
        return WitnessCheck("unreachable", f"witness {url} answered HTTP {status}; {unchecked}")
    try:
        note = parse_note(text)
    except NoteError as exc:
        return WitnessCheck("unreachable", f"witness {url} sent {exc}; {unchecked}")
    timestamp = note.signed_by(verifier)
    if timestamp is None:
        return WitnessCheck(
            "unreachable",
            f"the checkpoint from {url} carries no valid cosignature by {verifier.name}"
            f" with the given key; {unchecked}",
        )
    if note.checkpoint.origin != origin or note.signed_by(signer_verifier(identity, origin)) is None:
        return WitnessCheck("unreachable", f"the checkpoint from {url} is not signed by this station; {unchecked}")
    cp = note.checkpoint
    head = int(conn.execute("SELECT IFNULL(MAX(seq), 0) FROM chain").fetchone()[0])
    if head < cp.size:
        return WitnessCheck(
            "tampered",
            f"the witness cosigned {cp.size} chain entries (at POSIX time {timestamp}) but"
            f" the chain has {head}: entries were cut from the end, or the whole station was rolled back",
        )
    if root_at(conn, cp.size).root() != cp.root:
        return WitnessCheck(
            "tampered",
            f"the first {cp.size} chain entries differ from the checkpoint the witness"
            " cosigned: the history was rewritten (or replaced by an older copy)",
        )
    return WitnessCheck(
        "ok",
        f"witnessed: the first {cp.size} of {head} entries match the checkpoint {verifier.name}"
        f" cosigned at POSIX time {timestamp}; the {head - cp.size} entries after it are covered by the"
        " anchor only, until the next checkpoint",
    )
