"""The architecture registry: the names create_model accepts and the config behind each.

Our configs (models/configs/*.json) are read here rather than registered with open_clip, because
they carry keys open_clip's constructor would reject: ``preprocess_cfg`` (mean/std/...),
``tower_weights`` (which package weights go into which module), ``init_seed`` and ``input_size``
(the short side the station runs the image tower at). Any other name is
one of open_clip's built-in configs. Its own module so that both the factory (which builds models)
and checkpoint (which records where a model's weights came from) use it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip

from models.errors import ModelError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_EXTRA_KEYS = ("preprocess_cfg", "tower_weights", "init_seed", "input_size")


def _our_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.json"))}


def list_architectures() -> list[str]:
    """Names create_model accepts: this project's configs first, then open_clip's built-ins."""
    ours = list(_our_configs())
    return ours + [name for name in open_clip.list_models() if name not in ours]


def arch_config(arch: str) -> tuple[dict, dict]:
    """Return (open_clip model_cfg, extras) for an architecture name."""
    path = _our_configs().get(arch)
    if path is not None:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    else:
        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise ModelError(f"unknown architecture {arch!r}: choose one of {list_architectures()}")
    extras = {k: cfg.pop(k) for k in _EXTRA_KEYS if k in cfg}
    return cfg, extras


def tower_sources(arch: str) -> list[dict]:
    """Pretrained-weight sources (package, licence, origin) an architecture builds from; [] if none."""
    if arch not in _our_configs():
        return []
    keys = ("module", "source", "sha256", "licence", "origin")
    return [{k: s[k] for k in keys if k in s} for s in arch_config(arch)[1].get("tower_weights", [])]
