"""Issue 15 items 14-16: password prompts without a terminal, which database a command used, small CLI fixes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.cli import main as cli_main
from inspector.library.labels import dump_library, library_from_dict
from inspector.store.decision_log import DecisionLog

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CLI with no terminal at all (new session, stdin closed), as from a service or a pipe."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args],
        cwd=ROOT,
        env={**full, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        start_new_session=True,
    )


@pytest.fixture()
def station(tmp_path: Path) -> Path:
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", "admin-secret-1")
        admin = log.login("admin", "admin-secret-1")
        log.users.add_user("qa", "qa", "qa-engineer-pw", admin, temporary=False)
        log.users.change_own_password("qa", "qa-engineer-pw", "qa-own-password")
    return tmp_path / "s.db"


def test_prompts_without_a_terminal_end_in_one_line_and_exit_2(station: Path, tmp_path: Path) -> None:
    """Item 14: `user add` without $INSPECTOR_NEW_PASSWORD, `library import` without $INSPECTOR_PASSWORD."""
    env = {"PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "data")}
    add = _run(
        "user",
        "add",
        "bob",
        "--role",
        "operator",
        "--user",
        "admin",
        "--db",
        str(station),
        env={**env, "INSPECTOR_PASSWORD": "admin-secret-1"},
    )
    assert add.returncode == 2 and add.stderr.strip().splitlines() == [
        "inspector: error: no terminal to ask for the password: set $INSPECTOR_NEW_PASSWORD"
    ]
    lib = tmp_path / "lib.yaml"
    dump_library(
        library_from_dict(
            {
                "format": 1,
                "name": "t",
                "labels": [{"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]}],
            }
        ),
        lib,
    )
    imp = _run("library", "import", str(lib), "--user", "qa", "--reason", "r", "--db", str(station), env=env)
    assert imp.returncode == 2 and "Traceback" not in imp.stderr
    assert imp.stderr.strip().endswith("no terminal to ask for the password: set $INSPECTOR_PASSWORD")


def test_the_default_database_is_named_and_a_failed_sign_in_names_the_database(
    station: Path, tmp_path: Path, capsys
) -> None:
    """Item 15: without --db a command silently used the station's database."""
    listed = _run("user", "list", env={"PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "data")})
    assert listed.returncode == 2  # there is none there: the message says which file was meant
    assert f"using the station database {tmp_path / 'data' / 'rankclip-inspector' / 'station.db'}" in listed.stderr
    os.environ["INSPECTOR_PASSWORD"] = "qa-own-password"
    try:
        other = tmp_path / "other.db"
        with DecisionLog.open(other) as log:
            log.users.create_first_admin("admin", "admin-secret-1")
        assert (
            cli_main(
                [
                    "log",
                    "export",
                    "--from",
                    "2000-01-01",
                    "--to",
                    "2100-01-01",
                    "--out",
                    str(tmp_path / "b"),
                    "--user",
                    "qa",
                    "--db",
                    str(other),
                ]
            )
            == 2
        )
        assert f"checked against database {other}" in capsys.readouterr().err
    finally:
        del os.environ["INSPECTOR_PASSWORD"]


def test_export_ranges_and_library_import_say_what_they_do(station: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Item 16: reversed or empty export ranges; `library import` replacing the library silently; rank -h."""
    monkeypatch.setenv("INSPECTOR_PASSWORD", "qa-own-password")
    base = ["--user", "qa", "--db", str(station)]
    assert (
        cli_main(["log", "export", "--from", "2026-06-01", "--to", "2026-05-01", "--out", str(tmp_path / "r"), *base])
        == 2
    )
    assert "not before" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert (
        cli_main(["log", "export", "--from", "2001-01-01", "--to", "2001-02-01", "--out", str(tmp_path / "e"), *base])
        == 0
    )
    out = capsys.readouterr().out
    assert "no records between" in out and "None" not in out
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    labels = [{"id": i, "disposition": "accept", "descriptions": [f"surface {i}"]} for i in ("ok", "dent", "scratch")]
    dump_library(library_from_dict({"format": 1, "name": "t", "labels": labels}), first)
    dump_library(library_from_dict({"format": 1, "name": "t", "labels": labels[:1]}), second)
    assert cli_main(["library", "import", str(first), "--reason", "seed", *base]) == 0
    capsys.readouterr()
    assert cli_main(["library", "import", str(second), "--reason", "narrow", *base]) == 0
    out = capsys.readouterr().out
    assert "replaces version 1 as a whole" in out and "retired 2 label(s)" in out and "dent, scratch" in out
    with pytest.raises(SystemExit):
        cli_main(["rank", "-h"])
    assert "prints JSON" not in capsys.readouterr().out
