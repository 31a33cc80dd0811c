"""Signed checkpoints and the witness (issue 14): a witness on 127.0.0.1 catches what the station's
own files cannot: a cut tail with an older anchor restored, and a whole-station rollback."""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import sqlite3
import threading
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import WitnessConfig
from inspector.store.decision_log import DecisionLog
from inspector.witness.note import (
    Checkpoint,
    CompactRange,
    Verifier,
    leaf_hash,
    load_identity,
    parse_note,
    sign_checkpoint,
    signer_verifier,
    station_origin,
)
from inspector.witness.publisher import root_at
from inspector.witness.server import Witness, WitnessError, make_server


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_compact_range_root_is_the_rfc6962_root() -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(37)]
    tree = CompactRange()
    assert tree.root() == _mth([])
    for i, leaf in enumerate(leaves):
        tree.append(leaf_hash(leaf.hex()))
        assert tree.root() == _mth(leaves[: i + 1]), i


def test_signed_checkpoint_round_trip(tmp_path: Path) -> None:
    key = load_identity(tmp_path / "id", create=True)
    assert (tmp_path / "id").stat().st_mode & 0o777 == 0o600
    origin = station_origin(key)
    note = parse_note(sign_checkpoint(Checkpoint(origin, 5, b"\x07" * 32), key))
    verifier = Verifier.parse(str(signer_verifier(key, origin)))
    assert note.checkpoint == Checkpoint(origin, 5, b"\x07" * 32) and note.signed_by(verifier) == 0
    other = load_identity(tmp_path / "other", create=True)
    assert note.signed_by(signer_verifier(other, origin)) is None


@pytest.fixture()
def witness(tmp_path: Path):
    (tmp_path / "w").mkdir()
    server, state = make_server(tmp_path / "w" / "w.db", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()
    state.close()


def _station(path: Path, url: str) -> DecisionLog:
    return DecisionLog.open(path, witness=WitnessConfig(url=url, every_commits=1000, every_s=3600.0))


def _commit(log: DecisionLog, n: int) -> None:
    for i in range(n):
        log.record_event("camera_note", {"i": i})


def _verify(path: Path, url: str, key: str):
    with DecisionLog.open(path, create=False) as log:
        return log.verify(None, url, key)


def test_published_chain_verifies_with_the_witness(tmp_path: Path, witness) -> None:
    url, state = witness
    db = tmp_path / "s.db"
    with _station(db, url) as log:
        _commit(log, 5)
        assert log.publisher.publish(), log.publisher.state.problem
        _commit(log, 2)
    report = _verify(db, url, str(state.verifier))
    assert report.ok and "witnessed" in str(report) and not report.unchecked, report


def test_cut_tail_with_an_older_anchor_is_caught_by_the_witness(tmp_path: Path, witness) -> None:
    url, state = witness
    db = tmp_path / "s.db"
    with _station(db, url) as log:
        _commit(log, 3)
        head = log.sdb.conn.execute("SELECT MAX(seq) FROM chain").fetchone()[0]
        shutil.copy2(f"{db}.anchor", tmp_path / "old.anchor")  # the insider keeps an older anchor file
        _commit(log, 3)
        assert log.publisher.publish()
    raw = sqlite3.connect(db, isolation_level=None)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    raw.execute("DELETE FROM events WHERE id IN (SELECT row_id FROM chain WHERE tbl = 'events' AND seq > ?)", (head,))
    raw.execute("DELETE FROM chain WHERE seq > ?", (head,))
    raw.close()
    shutil.copy2(tmp_path / "old.anchor", f"{db}.anchor")
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok  # nothing on the station shows it ...
    report = _verify(db, url, str(state.verifier))
    assert not report.ok and "cut from the end" in report.problem, report  # ... the witness does


def test_whole_station_rollback_is_caught_by_the_witness(tmp_path: Path, witness) -> None:
    url, state = witness
    db = tmp_path / "s.db"
    with _station(db, url) as log:
        _commit(log, 2)
        assert log.publisher.publish()
    saved = tmp_path / "saved"
    saved.mkdir()
    for suffix in ("", ".anchor"):
        shutil.copy2(f"{db}{suffix}", saved / f"s.db{suffix}")
    with _station(db, url) as log:
        _commit(log, 4)
        assert log.publisher.publish()
    for suffix in ("", ".anchor"):
        shutil.copy2(saved / f"s.db{suffix}", f"{db}{suffix}")
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok
    assert not _verify(db, url, str(state.verifier)).ok
    assert main(["log", "verify", "--db", str(db), "--witness", url, "--witness-key", str(state.verifier)]) == 1


def test_witness_refuses_a_rewrite_and_a_smaller_tree(tmp_path: Path) -> None:
    witness = Witness(tmp_path / "w.db")
    key = load_identity(tmp_path / "id", create=True)
    origin = station_origin(key)
    vkey = str(signer_verifier(key, origin))
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(6)]

    def request(old: int, new: list[bytes], size: int, root_leaves: list[bytes]) -> str:
        note = sign_checkpoint(Checkpoint(origin, size, _mth(root_leaves)), key)
        body = f"old {old}\n" + "".join(base64.b64encode(x).decode() + "\n" for x in new) + "\n" + note
        return witness.add_checkpoint(body, vkey)

    request(0, leaves[:4], 4, leaves[:4])
    forged = [leaves[0], b"\x09" * 32, leaves[2], leaves[3]]
    with pytest.raises(WitnessError) as refused:  # a rewritten entry 2, extended by two more
        request(4, leaves[4:], 6, forged + leaves[4:])
    assert refused.value.status == 422
    with pytest.raises(WitnessError) as refused:  # a smaller tree after a larger one
        request(4, [], 3, leaves[:3])
    assert refused.value.status == 422
    with pytest.raises(WitnessError) as refused:  # the station's idea of the witness's size is stale
        request(2, leaves[2:6], 6, leaves)
    assert refused.value.status == 409 and str(refused.value) == "4"
    other = load_identity(tmp_path / "other", create=True)
    with pytest.raises(WitnessError) as refused:  # someone else's key for this station's log
        note = sign_checkpoint(Checkpoint(origin, 6, _mth(leaves)), other)
        witness.add_checkpoint(
            "old 4\n" + "".join(base64.b64encode(x).decode() + "\n" for x in leaves[4:]) + "\n" + note,
            str(signer_verifier(other, origin)),
        )
    assert refused.value.status == 403
    assert request(4, leaves[4:], 6, leaves).startswith("\u2014 rankclip-inspector/witness ")
    witness.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_station_keeps_committing_while_the_witness_is_down_then_catches_up(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "s.db"
    with _station(db, url) as log:
        _commit(log, 3)
        assert not log.publisher.publish() and "did not answer" in log.publisher.state.problem
        _commit(log, 3)  # inspection goes on
        (tmp_path / "w").mkdir()
        server, state = make_server(tmp_path / "w" / "w.db", "127.0.0.1", port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert log.publisher.publish(), log.publisher.state.problem
            head = log.sdb.conn.execute("SELECT MAX(seq) FROM chain").fetchone()[0]
            assert parse_note(state.latest(log.publisher.origin)).checkpoint.size == head
            with sqlite3.connect(db) as raw:
                assert parse_note(state.latest(log.publisher.origin)).checkpoint.root == root_at(raw, head).root()
        finally:
            server.shutdown()
            server.server_close()
    code = main(["log", "verify", "--db", str(db), "--witness", url, "--witness-key", str(state.verifier)])
    assert code == 3
    state.close()


def test_publisher_is_woken_every_n_commits(tmp_path: Path, witness) -> None:
    url, state = witness
    db = tmp_path / "s.db"
    with DecisionLog.open(db, witness=WitnessConfig(url=url, every_commits=2, every_s=3600.0)) as log:
        _commit(log, 4)
        origin = log.publisher.origin
        for _ in range(100):
            if log.publisher.state.cosigned >= 4:
                break
            threading.Event().wait(0.05)
        assert log.publisher.state.cosigned >= 4
    assert parse_note(state.latest(origin)).checkpoint.size >= 4


def test_cli_prints_keys_and_refuses_a_bad_listen_address(tmp_path: Path, capsys) -> None:
    assert main(["witness", "key", "--db", str(tmp_path / "w.db")]) == 0
    witness_key = capsys.readouterr().out.strip()
    assert Verifier.parse(witness_key).name == "rankclip-inspector/witness"
    with DecisionLog.open(tmp_path / "s.db") as log:
        _commit(log, 1)
    assert main(["log", "identity", "--db", str(tmp_path / "s.db")]) == 0
    assert Verifier.parse(capsys.readouterr().out.strip()).name.startswith("rankclip-inspector/station/")
    assert main(["witness", "serve", "--db", str(tmp_path / "w.db"), "--listen", "nowhere"]) == 2
    assert main(["log", "verify", "--db", str(tmp_path / "s.db"), "--witness", "http://127.0.0.1:1"]) == 2
