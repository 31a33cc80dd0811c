"""Self-describing checkpoints: ``NAME.safetensors`` plus a ``NAME.json`` sidecar.

The sidecar records the weights file's SHA-256; the model id hashes that together with the
sidecar's configuration (models.model_id), so neither can change under the same id. Loading hashes
the very bytes it then deserialises, so nothing unverified is ever parsed, and nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from models.durable import atomic_write
from models.errors import CheckpointError
from models.model_id import config_of, model_id_for

if TYPE_CHECKING:  # factory imports this module, so the type is only needed for annotations
    from models.factory import ModelBundle

FORMAT = "inspector-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".jit", ".torchscript"}
# Keys save_checkpoint writes itself; caller metadata may not overwrite them.
RESERVED_KEYS = {
    "format",
    "format_version",
    "arch",
    "base",
    "partial",
    "model_cfg",
    "preprocess_cfg",
    "weights_file",
    "weights_sha256",
    "frozen_sha256",
    "created_at",
    "software",
    "pretrained_sources",
}
_REQUIRED_KEYS = ("format_version", "arch", "base", "partial", "model_cfg", "preprocess_cfg", "weights_sha256")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """Return (weights, sidecar) for ``NAME.safetensors``, ``NAME.json`` or the stem ``NAME``."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path} is a pickle-based PyTorch file ({path.suffix}); this station loads only safetensors "
            "checkpoints because unpickling can run arbitrary code. Convert it once on a trusted machine: "
            "safetensors.torch.save_file(torch.load(f, weights_only=True), 'NAME.safetensors'), "
            "then write a sidecar with models.checkpoint.save_checkpoint"
        )
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def canonical_state(state: Mapping[str, torch.Tensor], keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Detached CPU copies, floats as fp32, contiguous and unshared (safetensors refuses shared storage)."""
    chosen = state.keys() if keys is None else keys
    out = {}
    for key in chosen:
        t = state[key].detach().to("cpu")
        out[key] = (t.float() if t.is_floating_point() else t).contiguous().clone()
    return out


def serialize_state(state: Mapping[str, torch.Tensor], header: Mapping[str, str] | None = None) -> bytes:
    """Serialize a state dict to safetensors bytes in canonical form (deterministic for equal tensors)."""
    return st_save(canonical_state(state), metadata={"format": "pt", **(header or {})})


def state_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of the weights file a full save_checkpoint would write (the weights part of the model id)."""
    return hashlib.sha256(serialize_state(model.state_dict())).hexdigest()


def state_digest(state: Mapping[str, torch.Tensor], keys: Iterable[str]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the given tensors (the frozen part of a partial save)."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        t = canonical_state(state, [key])[key]
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def trainable_keys(model: torch.nn.Module) -> set[str]:
    """State keys of trainable parameters, buffers of modules holding them (BN stats), and the logit scale/bias."""
    keys = {name for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            prefix = f"{mod_name}." if mod_name else ""
            keys.update(prefix + b for b, _ in module.named_buffers(recurse=False))
    keys.update(k for k in ("logit_scale", "logit_bias") if getattr(model, k, None) is not None)
    return keys & set(model.state_dict())  # non-persistent buffers are not part of any checkpoint


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _software() -> dict[str, str]:
    import open_clip
    import safetensors

    return {"torch": torch.__version__, "open_clip": open_clip.__version__, "safetensors": safetensors.__version__}


def save_checkpoint(
    bundle: ModelBundle, path: str | Path, *, metadata: dict | None = None, trainable_only: bool = False
) -> str:
    """Write NAME.safetensors + NAME.json atomically; return the new model id (weights + config)."""
    weights_path, sidecar_path = checkpoint_paths(path)
    extra = dict(metadata or {})
    clash = sorted(RESERVED_KEYS & extra.keys())
    if clash:
        raise CheckpointError(f"metadata keys {clash} are written by save_checkpoint itself: remove them")
    if not weights_path.parent.is_dir():
        raise CheckpointError(f"cannot save checkpoint: folder {weights_path.parent} does not exist")
    state = bundle.model.state_dict()
    base = bundle.metadata.get("base", bundle.arch)
    header: dict[str, str] = {}
    frozen = None
    if trainable_only:
        from models.architectures import list_architectures  # lazy: it imports open_clip

        if base not in list_architectures():
            raise CheckpointError(
                f"a trainable_only checkpoint must name a base architecture that can be rebuilt by name, "
                f"but {base!r} is not one: save the full model (trainable_only=False)"
            )
        keys = trainable_keys(bundle.model)
        frozen = state_digest(state, set(state) - keys)
        # In the header, so the model id (file hash) also pins the frozen towers it expects.
        header = {"inspector.partial": "true", "inspector.base": base, "inspector.frozen_sha256": frozen}
        state = {k: state[k] for k in keys}
    data = serialize_state(state, header)
    weights_sha = hashlib.sha256(data).hexdigest()
    from models.architectures import tower_sources  # lazy: it imports open_clip

    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": bundle.arch,
        "base": base,
        "partial": trainable_only,
        "model_cfg": bundle.model_cfg,
        "preprocess_cfg": dict(getattr(bundle.model.visual, "preprocess_cfg", {})),
        "weights_file": weights_path.name,
        "weights_sha256": weights_sha,
        "frozen_sha256": frozen,
        # The bundle's id is the parent (fit() trains in place and leaves model_id as it was loaded).
        "parent_model_id": extra.pop("parent_model_id", bundle.model_id),
        "pretrained_sources": bundle.metadata.get("pretrained_sources") or tower_sources(base),
        "training": extra.pop("training", {}),
        "data_sources": extra.pop("data_sources", []),
        "metrics": extra.pop("metrics", {}),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": _software(),
        **extra,
    }
    sidecar = _jsonable(sidecar)
    atomic_write(weights_path, data)
    atomic_write(sidecar_path, json.dumps(sidecar, indent=2, sort_keys=True).encode() + b"\n")
    return model_id_for(weights_sha, config_of(sidecar))


def read_sidecar(path: str | Path) -> dict:
    """Read and check a checkpoint's JSON sidecar."""
    weights_path, sidecar_path = checkpoint_paths(path)
    if not sidecar_path.is_file():
        raise CheckpointError(
            f"checkpoint {weights_path.name} has no sidecar {sidecar_path}: without it the weights cannot be "
            "verified or rebuilt. Copy the .json that was saved with it, or re-save with save_checkpoint"
        )
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"sidecar {sidecar_path} is not readable JSON ({exc}): restore it from the original"
        ) from exc
    missing = [k for k in _REQUIRED_KEYS if k not in sidecar] if isinstance(sidecar, dict) else list(_REQUIRED_KEYS)
    if missing:
        raise CheckpointError(
            f"sidecar {sidecar_path} lacks required keys {missing}: it was not written by save_checkpoint"
        )
    if not isinstance(sidecar["format_version"], int):
        raise CheckpointError(f"sidecar {sidecar_path} has an invalid format_version {sidecar['format_version']!r}")
    if sidecar["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"sidecar {sidecar_path} has format version {sidecar['format_version']}, newer than this software "
            f"reads ({FORMAT_VERSION}): update the station software"
        )
    check_preprocess_cfg(sidecar["preprocess_cfg"], str(sidecar_path))
    size = sidecar.get("input_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 32):
        raise CheckpointError(
            f"sidecar {sidecar_path} has an invalid input_size {size!r}: an int >= 32 (px, short side)"
        )
    return sidecar


# What open_clip's transforms accept; anything else ends in their assert, so it is refused here first.
_PREPROCESS_CHOICES = {
    "interpolation": ("bicubic", "bilinear", "random"),
    "resize_mode": ("shortest", "longest", "squash"),
    "mode": ("RGB",),
}


def check_preprocess_cfg(cfg: Any, where: str) -> None:
    """Refuse a preprocessing config open_clip would reject with an AssertionError, naming key and choices."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: preprocess_cfg must be a mapping, got {type(cfg).__name__}")
    for key, choices in _PREPROCESS_CHOICES.items():
        if key in cfg and cfg[key] not in choices:
            raise CheckpointError(f"{where}: preprocess_cfg {key} {cfg[key]!r} is not one of {', '.join(choices)}")
    for key in ("mean", "std"):
        value = cfg.get(key)
        if value is not None and not (
            isinstance(value, (list, tuple))
            and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        ):
            raise CheckpointError(f"{where}: preprocess_cfg {key} must be three finite numbers, got {value!r}")
    if "std" in cfg and any(v == 0 for v in cfg["std"]):
        raise CheckpointError(f"{where}: preprocess_cfg std must not contain 0")
    size = cfg.get("size")
    sizes = size if isinstance(size, (list, tuple)) else [size]
    if size is not None and not (
        1 <= len(sizes) <= 2 and all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096 for v in sizes)
    ):
        raise CheckpointError(f"{where}: preprocess_cfg size must be 8-4096 pixels (one or two integers), got {size!r}")


def refuse_pickle(path: str | Path) -> None:
    """Raise CheckpointError if a weights file is pickle-based or TorchScript, by suffix or by content."""
    path = Path(path)
    checkpoint_paths(path)  # raises for .pt/.pth/.bin/... names
    if path.is_file():
        with open(path, "rb") as fh:
            _sniff(path, fh.read(8))


def _sniff(weights_path: Path, head: bytes) -> None:
    # Refuse by content too: a TorchScript or torch.save archive renamed to .safetensors is still a pickle.
    if head.startswith(b"PK\x03\x04"):
        raise CheckpointError(
            f"{weights_path} is a PyTorch zip archive (torch.save pickle or TorchScript), not safetensors: "
            "convert it to safetensors on a trusted machine; this station never unpickles"
        )
    if head[:1] == b"\x80":
        raise CheckpointError(f"{weights_path} is a pickle file, not safetensors: convert it to safetensors")


def _parse_header(weights_path: Path, data: bytes) -> dict[str, str]:
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size]) if 8 + size <= len(data) else None
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{weights_path} is not a valid safetensors file (truncated or not safetensors): "
            "restore it from the original checkpoint"
        )
    return header.get("__metadata__") or {}


def verify_checkpoint(path: str | Path) -> str:
    """Recompute the weights' SHA-256 and compare it with the sidecar; return the model id (weights + config)."""
    weights_path, _ = checkpoint_paths(path)
    sidecar = read_sidecar(path)
    return model_id_for(_read_verified(weights_path, sidecar)[1], config_of(sidecar))


def _read_verified(weights_path: Path, sidecar: dict) -> tuple[bytes, str]:
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights {weights_path} do not exist")
    data = weights_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sidecar["weights_sha256"]:
        raise CheckpointError(
            f"weights file {weights_path} does not match its sidecar hash (expected "
            f"{sidecar['weights_sha256'][:16]}..., got {actual[:16]}...): the file is corrupt or was tampered "
            "with. Restore both files from the original checkpoint"
        )
    return data, actual


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict[str, str], str]:
    """Verify and deserialise a checkpoint: (state, sidecar, safetensors header metadata, model id)."""
    weights_path, _ = checkpoint_paths(path)
    refuse_pickle(weights_path)
    sidecar = read_sidecar(path)
    data, weights_sha = _read_verified(weights_path, sidecar)
    model_id = model_id_for(weights_sha, config_of(sidecar))
    _sniff(weights_path, data[:8])
    header = _parse_header(weights_path, data)
    try:
        state = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError; report it in our terms
        raise CheckpointError(f"{weights_path} is not a valid safetensors file ({exc}): restore it") from exc
    if (header.get("inspector.partial") == "true") != bool(sidecar["partial"]):
        raise CheckpointError(f"{weights_path} and its sidecar disagree on whether the checkpoint is partial")
    return state, sidecar, header, model_id
