"""Station configuration from TOML: defaults work offline; bad files are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.config import DEFAULT_MODEL, load_config
from inspector.errors import ConfigError


def test_defaults_point_at_shipped_assets() -> None:
    config = load_config(None)
    assert config.model.ref == DEFAULT_MODEL
    assert Path(config.library.path).is_file()


def test_toml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[model]\ndevice = "cpu"\n[database]\npath = "/tmp/x.db"\n')
    config = load_config(path)
    assert config.model.device == "cpu" and config.database.path == "/tmp/x.db"
    assert config.model.ref == DEFAULT_MODEL


@pytest.mark.parametrize(
    "text, message",
    [
        ("[modle]\nref='x'\n", "unknown sections"),
        ("[model]\nrefs='x'\n", "unknown keys"),
        ("[model]\nref=3\n", "must be a string"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "station.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_witness_section_takes_numbers(tmp_path) -> None:
    from inspector.config import load_config
    from inspector.errors import ConfigError

    path = tmp_path / "station.toml"
    path.write_text('[witness]\nurl = "http://127.0.0.1:8091"\nevery_commits = 50\nevery_s = 30\n')
    witness = load_config(path).witness
    assert (witness.url, witness.every_commits, witness.every_s) == ("http://127.0.0.1:8091", 50, 30)
    path.write_text("[witness]\nevery_commits = 0\n")
    with pytest.raises(ConfigError, match="every_commits must be a positive number"):
        load_config(path)
