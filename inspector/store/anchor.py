"""The anchor file: the chain head (seq, hash) HMAC'ed with the station key, outside the database.

Two slots rewritten in place by turns, so that moving it costs one fdatasync; see write_anchor.
Also the station key file it is MAC'ed with.
"""

from __future__ import annotations

import errno
import hmac
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from inspector.errors import InspectorError
from inspector.store.chain import canonical
from models.durable import atomic_write, create_secret_file

ANCHOR_TAG = b"rankclip-inspector/anchor/v1\x00"


class AnchorError(InspectorError):
    """The anchor file or the station key file is missing, unreadable or fails its HMAC."""


@dataclass(frozen=True)
class Anchor:
    """The chain head as last written outside the database."""

    seq: int
    hash: str
    written_at: str
    # How many times the anchor has been written (None in files written before the counter): the two
    # slots always hold consecutive counts, so erasing the newer one cannot pass for the older state.
    n: int | None = None


def load_key(path: Path, create: bool) -> bytes:
    """The station HMAC key (32 random bytes, hex in a 0600 file); created only when asked."""
    if create:
        try:
            create_secret_file(path)
        except OSError as exc:
            raise AnchorError(
                f"station key {path} cannot be created: {exc.strerror or exc}; the folder must be"
                " writable and have free space"
            ) from None
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise AnchorError(f"station key {path} is readable by other users; run `chmod 600 {path}`")
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise AnchorError(f"station key {path} is missing; restore it from the station backup") from None
    except ValueError:
        raise AnchorError(f"station key {path} is not 64 hex digits; restore it from the station backup") from None
    except OSError as exc:
        raise AnchorError(
            f"station key {path} cannot be read: {exc.strerror or exc}; check its owner and"
            " permissions (the station's account must read it)"
        ) from None


def _mac(key: bytes, seq: int, digest: str, written_at: str, n: int | None = None) -> str:
    fields: dict[str, object] = {"seq": seq, "hash": digest, "written_at": written_at}
    if n is not None:
        fields["n"] = n
    return hmac.new(key, ANCHOR_TAG + canonical(fields), "sha256").hexdigest()


# Anchor file format 2: two slots, rewritten in place by turns; each fills its own page, so writing
# one never rewrites the other's. A slot is one line: the canonical record {"hash", "mac", "seq",
# "written_at"} padded with spaces. The valid slot with the higher seq is the anchor; a write cut
# off by a power loss can only damage the slot being written, and the other still holds the anchor
# before it. Format 1, the bare record replaced by rename on every write, is still read, and the
# next write converts it.
ANCHOR_SLOT_BYTES = 4096
ANCHOR_FILE_BYTES = 2 * ANCHOR_SLOT_BYTES
_BLANK_SLOT = b" " * (ANCHOR_SLOT_BYTES - 1) + b"\n"
_READ_LIMIT = 1 << 16  # more than either format holds; a longer file is damaged either way


class _DamagedSlot(Exception):
    """A slot that is neither blank nor a valid record; the message says why."""


@dataclass(frozen=True)
class _AnchorFile:
    """An anchor file as read: each slot's anchor (None when blank or damaged) and which are damaged."""

    legacy: bool  # format 1: a single record
    slots: tuple[Anchor | None, ...]
    damaged: tuple[tuple[int, str], ...]  # (slot, why)
    tampered: str = ""  # a state no write or power loss leaves: a slot erased or replaced

    @property
    def current(self) -> Anchor | None:
        """The valid slot with the highest seq: the anchor."""
        return max((a for a in self.slots if a is not None), key=lambda a: a.seq, default=None)

    def slot_to_write(self) -> int:
        """Any slot but the current anchor's: a damaged or blank one, else the older anchor's."""
        current = self.current
        return 0 if current is None else 1 - self.slots.index(current)

    def next_n(self) -> int:
        """The write counter for the next anchor written to this file."""
        return 1 + max((a.n or 0 for a in self.slots if a is not None), default=0)

    def problem(self, path: Path) -> str:
        """Why the file cannot be trusted as it is; empty when no slot is damaged."""
        if self.tampered:
            return f"anchor file {path}: {self.tampered}: it was edited"
        if not self.damaged:
            return ""
        what = ", ".join(why if self.legacy else f"slot {slot} {why}" for slot, why in self.damaged)
        if self.current is None:
            return f"anchor file {path} {what}: it was edited, damaged or comes from another station"
        return (
            f"anchor file {path}: {what}: it was edited, or a power loss cut off an anchor write (then the"
            " next commit rewrites that slot)"
        )


def _record(key: bytes, anchor: Anchor) -> bytes:
    """The anchor and its HMAC as canonical JSON: a format-1 file's content, a format-2 slot's line."""
    fields: dict[str, object] = {
        "seq": anchor.seq,
        "hash": anchor.hash,
        "written_at": anchor.written_at,
        "mac": _mac(key, anchor.seq, anchor.hash, anchor.written_at, anchor.n),
    }
    if anchor.n is not None:
        fields["n"] = anchor.n
    return canonical(fields)


def _slot(key: bytes, anchor: Anchor) -> bytes:
    """One format-2 slot holding this anchor."""
    record = _record(key, anchor)
    if len(record) >= ANCHOR_SLOT_BYTES:
        raise ValueError(f"an anchor record of {len(record)} bytes does not fit a {ANCHOR_SLOT_BYTES}-byte slot")
    return record.ljust(ANCHOR_SLOT_BYTES - 1) + b"\n"


def _parse_slot(data: bytes, key: bytes) -> Anchor | None:
    """The anchor a slot (or a whole format-1 file) holds; None when blank, _DamagedSlot when damaged."""
    text = data.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
        n = record.get("n")
        anchor = Anchor(
            int(record["seq"]), str(record["hash"]), str(record["written_at"]), None if n is None else int(n)
        )
        expected = _mac(key, anchor.seq, anchor.hash, anchor.written_at, anchor.n).encode("ascii")
        valid = hmac.compare_digest(str(record["mac"]).encode("utf-8"), expected)
    except (ValueError, KeyError, TypeError) as exc:  # also invalid UTF-8 from a torn write
        raise _DamagedSlot(f"is unreadable ({exc})") from None
    if not valid:
        raise _DamagedSlot("fails its HMAC")
    return anchor


def _load(data: bytes, key: bytes) -> _AnchorFile:
    """Parse an anchor file's bytes; a file of any other size than format 2 is read as format 1."""
    legacy = len(data) != ANCHOR_FILE_BYTES
    chunks = (data,) if legacy else (data[:ANCHOR_SLOT_BYTES], data[ANCHOR_SLOT_BYTES:])
    slots: list[Anchor | None] = []
    damaged: list[tuple[int, str]] = []
    for index, chunk in enumerate(chunks):
        try:
            slots.append(_parse_slot(chunk, key))
        except _DamagedSlot as exc:
            slots.append(None)
            damaged.append((index, str(exc)))
    if not damaged and all(s is None for s in slots):  # every write leaves a record: this file was emptied
        damaged.append((0, "is empty"))
    return _AnchorFile(legacy, tuple(slots), tuple(damaged), "" if legacy or damaged else _erased(slots))


def _erased(slots: list[Anchor | None]) -> str:
    """Why two readable slots are not a state the writer leaves: a blank beside a later write, or a gap.

    The first write fills slot 0 and leaves slot 1 blank (n = 1); every later write replaces the
    older slot with n + 1, and a power loss can only leave the slot being written unreadable.
    """
    counts = [None if s is None else s.n for s in slots]
    for index, anchor in enumerate(slots):
        if anchor is None and counts[1 - index] is not None and counts[1 - index] != 1:
            return f"slot {index} is blank beside anchor write {counts[1 - index]}: a newer anchor was erased"
    if None not in counts and abs(counts[0] - counts[1]) != 1:  # type: ignore[operator]
        return f"the slots hold anchor writes {counts[0]} and {counts[1]}, not consecutive ones: a slot was replaced"
    return ""


# How long a commit or a verify waits for the anchor's lock file before giving up with a clear error:
# writers hold it for one small write, so a longer hold is a stuck or hostile process.
ANCHOR_LOCK_TIMEOUT_S = 10.0


class AnchorLockTimeout(TimeoutError):
    """The anchor's lock file stayed locked by another process past ANCHOR_LOCK_TIMEOUT_S."""


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold the anchor's lock file: writers exclusively, readers shared (never a slot half rewritten).

    A reader that cannot open the lock file (none yet, a read-only copy) reads without it: no
    writer rewrites a slot of a file whose lock file is missing, since every writer creates it first.
    The lock file is 0600 (other accounts cannot open it to hold it) and waited for with a deadline.
    """
    import fcntl  # POSIX only; the station runs on Linux

    lock_path = path.with_name(path.name + ".lock")
    flags = (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY
    fd: int | None = None
    try:
        fd = os.open(lock_path, flags, 0o600)
    except OSError:
        if exclusive:
            raise
    try:
        if fd is not None:
            _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, lock_path)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _flock(fd: int, mode: int, lock_path: Path) -> None:
    """flock with a deadline (polling LOCK_NB: flock itself has no timeout)."""
    import fcntl

    deadline = time.monotonic() + ANCHOR_LOCK_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise AnchorLockTimeout(
                    errno.ETIMEDOUT,
                    f"the anchor lock file {lock_path} was held by another"
                    f" process for over {ANCHOR_LOCK_TIMEOUT_S:g} s (find it with"
                    f" `fuser {lock_path}`)",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _read_file(fd: int) -> bytes:
    return os.pread(fd, _READ_LIMIT, 0)


def read_anchor(path: Path, key: bytes) -> Anchor | None:
    """The anchor in `path` (None when there is no file); AnchorError if any slot is damaged or forged."""
    try:
        with _locked(path, exclusive=False):
            fd = os.open(path, os.O_RDONLY)
            try:
                data = _read_file(fd)
            finally:
                os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorError(f"anchor file {path} is unreadable ({exc}); it was damaged or replaced") from None
    found = _load(data, key)
    if found.damaged or found.tampered:
        raise AnchorError(found.problem(path))
    return found.current


def anchor_record(path: Path, key: bytes) -> bytes | None:
    """The current anchor as one canonical JSON line with its HMAC (a format-1 file), for export bundles.

    None when there is no anchor file; AnchorError as read_anchor.
    """
    anchor = read_anchor(path, key)
    return None if anchor is None else _record(key, anchor) + b"\n"


AnchorCheck = Callable[[Anchor | None, bool], None]


def write_anchor(
    path: Path, key: bytes, seq: int, digest: str, written_at: str, check: AnchorCheck | None = None
) -> None:
    """Move the anchor forward to (seq, digest); a lower seq never replaces a higher one.

    `check(current, torn)` is called with the anchor in force (None: no file) before anything is
    written, and also when nothing is (the anchor is already past `seq`); it raises AnchorError
    when the chain no longer extends the anchor (or a missing file must not be created); torn says
    the other slot is unreadable, as a power loss mid-write leaves it. An
    erased or replaced slot is never written over: that would hide the edit.

    Writers of all processes take turns on the lock file. A format-2 file gets the slot that does
    not hold the current anchor rewritten in place, then one fdatasync: no rename, no folder sync.
    A missing or format-1 file is written whole, once: temp file, fsync, rename, fsync the folder.
    """
    with _locked(path, exclusive=True):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            if check is not None:
                check(None, False)
            _write_whole(path, _slot(key, Anchor(seq, digest, written_at, 1)) + _BLANK_SLOT)
            return
        try:
            found = _load(_read_file(fd), key)
            current = found.current
            if found.tampered or (found.damaged and (found.legacy or current is None)):
                # Nothing valid to keep, and perhaps another station's file: never overwrite it silently.
                raise AnchorError(found.problem(path))
            if current is not None and current.seq >= seq:
                # Another writer anchored past us (legitimate), or the tail at and above our seq was cut
                # and we are re-using its numbers: the check tells them apart (the anchored entry is gone).
                if check is not None:
                    check(current, False)
                return
            if check is not None:
                check(current, bool(found.damaged))
            slot = _slot(key, Anchor(seq, digest, written_at, found.next_n()))
            if found.legacy:
                _write_whole(path, slot + _BLANK_SLOT)
            else:
                _write_slot(fd, slot, found.slot_to_write())
        finally:
            os.close(fd)


def _write_slot(fd: int, slot: bytes, index: int) -> None:
    """Rewrite one slot in place; fdatasync suffices, as the file's size and name never change."""
    if os.pwrite(fd, slot, index * ANCHOR_SLOT_BYTES) != len(slot):
        raise OSError(errno.EIO, "short write to the anchor file")
    os.fdatasync(fd)


def _write_whole(path: Path, data: bytes) -> None:
    """Create or replace the anchor file atomically (models.durable.atomic_write), under the lock."""
    # Every writer holds the lock while its temp file exists, so any other one now is left over
    # from a writer that was killed mid-write: remove it, or crashes pile them up.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    atomic_write(path, data)
