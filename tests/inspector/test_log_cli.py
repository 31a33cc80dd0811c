"""`inspector user|library|log` end to end through cli.main: exit 0 when fine, 1 when the chain or
a bundle is broken (naming what), 2 on errors; passwords only from the environment or a prompt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.library.labels import load_library, seed_library_dir

SEED = seed_library_dir() / "textiles.yaml"


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    password: str | None = None,
    new_password: str | None = None,
) -> tuple[int, str, str]:
    for name, value in (("INSPECTOR_PASSWORD", password), ("INSPECTOR_NEW_PASSWORD", new_password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def db(tmp_path: Path, capsys, monkeypatch) -> Path:
    path = tmp_path / "station.db"
    assert (
        run(
            capsys,
            monkeypatch,
            "user",
            "add",
            "boss",
            "--role",
            "admin",
            "--db",
            str(path),
            new_password="admin-pass-1",
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            monkeypatch,
            "user",
            "add",
            "qa1",
            "--role",
            "qa",
            "--user",
            "boss",
            "--no-forced-change",
            "--db",
            str(path),
            password="admin-pass-1",
            new_password="qa1-password",
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            monkeypatch,
            "user",
            "add",
            "aud",
            "--role",
            "auditor",
            "--user",
            "boss",
            "--no-forced-change",
            "--db",
            str(path),
            password="admin-pass-1",
            new_password="aud-password",
        )[0]
        == 0
    )
    code, out, _ = run(
        capsys,
        monkeypatch,
        "library",
        "import",
        str(SEED),
        "--reason",
        "seed",
        "--user",
        "qa1",
        "--db",
        str(path),
        password="qa1-password",
    )
    assert code == 0 and "version 1" in out
    return path


def test_library_commands(db: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    qa = dict(password="qa1-password")
    assert (
        run(
            capsys,
            monkeypatch,
            "library",
            "add",
            "ok",
            "--description",
            "an even plain weave",
            "--reason",
            "x",
            "--user",
            "qa1",
            "--db",
            str(db),
            **qa,
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            monkeypatch,
            "library",
            "add",
            "hole",
            "--description",
            "a hole in the cloth",
            "--disposition",
            "scrap",
            "--severity",
            "4",
            "--reason",
            "new",
            "--user",
            "qa1",
            "--db",
            str(db),
            **qa,
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            monkeypatch,
            "library",
            "retire",
            "local",
            "--reason",
            "merged",
            "--user",
            "qa1",
            "--db",
            str(db),
            **qa,
        )[0]
        == 0
    )
    code, out, _ = run(capsys, monkeypatch, "library", "list", "--db", str(db))
    assert code == 0 and "an even plain weave" in out and "hole" in out and "local" not in out
    code, out, _ = run(capsys, monkeypatch, "library", "list", "--all", "--db", str(db))
    assert "local" in out and "[retired]" in out
    code, _, err = run(
        capsys,
        monkeypatch,
        "library",
        "retire",
        "global",
        "--reason",
        "x",
        "--user",
        "boss",
        "--db",
        str(db),
        password="admin-pass-1",
    )
    assert code == 2 and "may not edit library" in err
    assert (
        run(capsys, monkeypatch, "library", "export", str(tmp_path / "v1.yaml"), "--version", "1", "--db", str(db))[0]
        == 0
    )
    assert load_library(tmp_path / "v1.yaml") == load_library(SEED)
    assert run(capsys, monkeypatch, "library", "check", str(tmp_path / "v1.yaml"))[0] == 0  # cli's own subcommand


def test_log_verify_exit_codes(db: Path, capsys, monkeypatch) -> None:
    code, out, _ = run(capsys, monkeypatch, "log", "verify", "--db", str(db))
    assert code == 0 and "chain intact" in out
    code, out, _ = run(capsys, monkeypatch, "log", "verify", "--user", "aud", "--db", str(db), password="aud-password")
    assert code == 0
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER library_descriptions_no_update")
    raw.execute("UPDATE library_descriptions SET text = 'edited' WHERE id = 2")
    raw.commit()
    raw.close()
    code, out, _ = run(capsys, monkeypatch, "log", "verify", "--db", str(db))
    assert code == 1 and "library_descriptions row 2" in out
    code, _, err = run(capsys, monkeypatch, "log", "verify", "--db", str(db.with_name("missing.db")))
    assert code == 2 and "does not exist" in err


def test_log_export_and_verify_export(db: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    bundle = tmp_path / "bundle"
    code, out, _ = run(
        capsys,
        monkeypatch,
        "log",
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--out",
        str(bundle),
        "--user",
        "aud",
        "--db",
        str(db),
        password="aud-password",
    )
    assert code == 0 and "exported" in out
    code, out, _ = run(capsys, monkeypatch, "log", "verify-export", str(bundle), "--key", f"{db}.key")
    assert code == 0 and "HMAC checked" in out
    code, _, err = run(
        capsys,
        monkeypatch,
        "log",
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--out",
        str(bundle),
        "--user",
        "aud",
        "--db",
        str(db),
        password="aud-password",
    )
    assert code == 2 and "exists" in err
    (bundle / "events.csv").write_text("tampered")
    code, out, _ = run(capsys, monkeypatch, "log", "verify-export", str(bundle))
    assert code == 1 and "events.csv was modified" in out


def test_authentication_errors_and_no_password_option(db: Path, capsys, monkeypatch) -> None:
    code, _, err = run(
        capsys,
        monkeypatch,
        "library",
        "retire",
        "local",
        "--reason",
        "x",
        "--user",
        "qa1",
        "--db",
        str(db),
        password="wrong-password",
    )
    assert code == 2 and "password is wrong" in err
    with pytest.raises(SystemExit) as info:
        main(["user", "passwd", "qa1", "--user", "qa1", "--password", "x", "--db", str(db)])
    assert info.value.code == 2  # argparse refuses: there is no way to put a password on the command line
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "qa1-password")
    monkeypatch.setattr("inspector.commands.user.has_terminal", lambda: True)  # someone at a terminal answers
    monkeypatch.delenv("INSPECTOR_PASSWORD", raising=False)
    monkeypatch.setenv("INSPECTOR_NEW_PASSWORD", "qa1-new-password")
    assert main(["user", "passwd", "qa1", "--user", "qa1", "--db", str(db)]) == 0  # password from the prompt
    code, _, _ = run(
        capsys, monkeypatch, "log", "verify", "--user", "qa1", "--db", str(db), password="qa1-new-password"
    )
    assert code == 2  # signed in fine, but QA has no 'verify' permission in the matrix
    code, _, err = run(
        capsys, monkeypatch, "user", "add", "second", "--role", "admin", "--db", str(db), new_password="whatever-pass"
    )
    assert code == 2 and "--user" in err
