"""The anchor file: two slots rewritten in place by turns (no rename), a write cut off by a power
loss keeps the previous anchor and is repaired by the next commit, anchors written by the
previous release (one JSON record) are read and converted, and readers wait for a writer."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from pathlib import Path

import pytest

from inspector.store.anchor import (
    ANCHOR_FILE_BYTES,
    ANCHOR_SLOT_BYTES,
    AnchorError,
    anchor_record,
    read_anchor,
    write_anchor,
)
from inspector.store.chain import head
from inspector.store.decision_log import DecisionLog


def _format1(key: bytes, seq: int, digest: str, written_at: str) -> bytes:
    """An anchor file as the previous release wrote it: one canonical JSON record, HMAC over the rest."""

    def dumps(obj: dict) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    body = {"seq": seq, "hash": digest, "written_at": written_at}
    mac = hmac.new(key, b"rankclip-inspector/anchor/v1\x00" + dumps(body), "sha256").hexdigest()
    return dumps({**body, "mac": mac}) + b"\n"


def _slots(anchor: Path) -> list[dict | None]:
    data = anchor.read_bytes()
    assert len(data) == ANCHOR_FILE_BYTES
    chunks = [data[:ANCHOR_SLOT_BYTES], data[ANCHOR_SLOT_BYTES:]]
    return [json.loads(c) if c.strip() else None for c in chunks]


@pytest.fixture()
def log(tmp_path: Path):
    with DecisionLog.open(tmp_path / "s.db") as opened:
        yield opened


def test_slots_alternate_in_place_and_the_newest_is_the_anchor(log: DecisionLog) -> None:
    path = log.sdb.anchor_path
    inode = path.stat().st_ino
    newest = []
    for i in range(4):
        log.record_event("camera_note", {"i": i})
        slots = _slots(path)
        seqs = [s["seq"] if s else 0 for s in slots]
        newest.append(seqs.index(max(seqs)))
        assert max(seqs) == head(log.sdb.conn)[0] == read_anchor(path, log.sdb.key).seq
    assert newest == [1, 0, 1, 0] and path.stat().st_ino == inode  # rewritten in place: never renamed
    assert not list(path.parent.glob(".*.tmp")) and log.verify().ok


def test_a_slot_write_cut_off_by_a_power_loss_keeps_the_previous_anchor(log: DecisionLog) -> None:
    path = log.sdb.anchor_path
    log.record_event("camera_note", {"i": 0})
    before = path.read_bytes()
    log.record_event("camera_note", {"i": 1})  # rewrites the older slot
    after = path.read_bytes()
    (torn,) = [
        i
        for i in (0, 1)
        if before[i * ANCHOR_SLOT_BYTES : (i + 1) * ANCHOR_SLOT_BYTES]
        != after[i * ANCHOR_SLOT_BYTES : (i + 1) * ANCHOR_SLOT_BYTES]
    ]
    cut = torn * ANCHOR_SLOT_BYTES + 60  # the new record's first 60 bytes reached the disk, the rest did not
    path.write_bytes(after[:cut] + before[cut:])
    report = log.verify()
    assert not report.ok and f"slot {torn}" in report.problem and "power loss" in report.problem
    log.record_event("camera_note", {"i": 2})  # the next commit rewrites the damaged slot, not the good one
    report = log.verify()
    assert report.ok and report.anchor_seq == head(log.sdb.conn)[0]
    assert all(s is not None for s in _slots(path))


def test_an_anchor_of_the_previous_release_is_read_and_converted(log: DecisionLog) -> None:
    path, key = log.sdb.anchor_path, log.sdb.key
    seq, digest = head(log.sdb.conn)
    path.write_bytes(_format1(key, seq, digest, "2026-01-01T00:00:00.000Z"))
    report = log.verify()
    assert report.ok and report.anchor_seq == seq
    write_anchor(path, key, seq - 1, "0" * 64, "2026-01-01T00:00:00.000Z")  # only forward, in this format too
    assert path.stat().st_size < ANCHOR_SLOT_BYTES and read_anchor(path, key).seq == seq
    log.record_event("camera_note", {"n": 1})
    assert path.stat().st_size == ANCHOR_FILE_BYTES and log.verify().ok
    assert read_anchor(path, key).seq == seq + 1


def test_an_edited_anchor_of_the_previous_release_is_refused_not_overwritten(log: DecisionLog) -> None:
    path, key = log.sdb.anchor_path, log.sdb.key
    seq, digest = head(log.sdb.conn)
    edited = json.loads(_format1(key, seq, digest, "2026-01-01T00:00:00.000Z"))
    path.write_text(json.dumps({**edited, "seq": seq + 5}))
    assert "HMAC" in log.verify().problem
    with pytest.raises(AnchorError, match="HMAC"):
        log.record_event("camera_note", {"n": 1})
    assert json.loads(path.read_text())["seq"] == seq + 5  # left as found, for whoever investigates


def test_anchor_record_is_what_the_previous_release_wrote(log: DecisionLog) -> None:
    path, key = log.sdb.anchor_path, log.sdb.key
    log.record_event("camera_note", {"n": 1})
    anchor = read_anchor(path, key)
    record = json.loads(anchor_record(path, key))
    assert record.pop("n") == anchor.n  # the write counter (issue 14) is the one field added since
    legacy = json.loads(_format1(key, anchor.seq, anchor.hash, anchor.written_at))
    assert record.keys() == legacy.keys() and (record["seq"], record["hash"]) == (legacy["seq"], legacy["hash"])
    assert anchor_record(path.with_name("missing.anchor"), key) is None


def test_a_reader_waits_while_a_writer_holds_the_lock(log: DecisionLog) -> None:
    path, key = log.sdb.anchor_path, log.sdb.key
    expected = read_anchor(path, key)
    got: list = []
    with open(f"{path}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # as a writer does around a slot rewrite
        reader = threading.Thread(target=lambda: got.append(read_anchor(path, key)))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and not got
    reader.join(10)
    assert got == [expected]


def test_an_anchor_file_that_was_emptied_is_not_taken_for_no_anchor(log: DecisionLog) -> None:
    path = log.sdb.anchor_path
    path.write_bytes(b" " * (ANCHOR_FILE_BYTES - 1) + b"\n")
    report = log.verify()
    assert not report.ok and "empty" in report.problem
    path.write_bytes(b"")
    assert not log.verify().ok


def test_a_record_too_long_for_a_slot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        write_anchor(tmp_path / "a.anchor", os.urandom(32), 1, "ab" * 32, "x" * ANCHOR_SLOT_BYTES)
    assert not (tmp_path / "a.anchor").exists()


def test_concurrent_writers_leave_the_highest_seq(tmp_path: Path) -> None:
    path, key = tmp_path / "a.anchor", os.urandom(32)
    seqs = list(range(1, 201))

    def write(part: list[int]) -> None:
        for seq in part:
            write_anchor(path, key, seq, hashlib.sha256(str(seq).encode()).hexdigest(), "2026-01-01T00:00:00.000Z")

    threads = [threading.Thread(target=write, args=(seqs[i::2],)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    anchor = read_anchor(path, key)
    assert anchor.seq == 200 and anchor.hash == hashlib.sha256(b"200").hexdigest()
