"""`inspector watch ... --publish`: quick-start outputs from the command line (subprocesses, tiny model)."""

from __future__ import annotations

import json

import pytest

from linebroker import Subscriber, free_port, kill, start_broker
from linestation import run_cli as run
from linestation import write_images as _images


def test_credentials_in_a_publish_url_are_refused_in_one_line(tmp_path):
    out = run(
        "watch",
        str(tmp_path),
        "--db",
        str(tmp_path / "s.db"),
        "--user",
        "op",
        "--publish",
        "mqtt://station:s3cret@broker:1883/v",
    )
    assert out.returncode == 2 and "credentials in a URL are refused" in out.stderr
    assert "s3cret" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


@pytest.mark.timeout(300)
def test_watch_publishes_every_printed_inspection(tmp_path):
    db = tmp_path / "station.db"
    admin_env = {"INSPECTOR_NEW_PASSWORD": "Admin-pass-1234"}
    assert run("user", "add", "admin", "--role", "admin", "--db", str(db), env=admin_env).returncode == 0
    op_env = {"INSPECTOR_PASSWORD": "Admin-pass-1234", "INSPECTOR_NEW_PASSWORD": "Oper-pass-12345"}
    assert (
        run(
            "user",
            "add",
            "op",
            "--role",
            "operator",
            "--user",
            "admin",
            "--db",
            str(db),
            "--reason",
            "shift",
            "--no-forced-change",
            env=op_env,
        ).returncode
        == 0
    )
    _images(tmp_path / "line", 3)
    port = free_port()
    broker = start_broker(port)
    sub = Subscriber(port, ["st1/verdicts"])
    try:
        out = run(
            "watch",
            str(tmp_path / "line"),
            "--db",
            str(db),
            "--user",
            "op",
            "--model",
            "inspector-tiny",
            "--exit-when-idle",
            "--timeout",
            "3",
            "--publish",
            f"mqtt://127.0.0.1:{port}/st1/verdicts",
            "--publish",
            f"opc.tcp://127.0.0.1:{free_port()}",
            env={"INSPECTOR_PASSWORD": "Oper-pass-12345"},
        )
        assert out.returncode == 0, out.stderr
    finally:
        sub.close()
        kill(broker)
    printed = [json.loads(line)["inspection_id"] for line in out.stdout.splitlines()]
    published = [json.loads(p)["inspection_id"] for _, p in sub.messages]
    assert len(printed) == 3 and published == printed  # drained before exit, in order
    assert (db.parent / "station.db.opcua" / "server_cert.der").exists()  # the secure server made its certificate
