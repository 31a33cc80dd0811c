"""Real tiny-model checkpoints and a promotion through the registry, for tests that need a station
whose model changed (tests/inspector/test_past_models.py, tests/ui/test_audit_corrections.py)."""

from __future__ import annotations

from pathlib import Path

from inspector.config import DatabaseConfig, LibraryConfig, ModelConfig, StationConfig
from inspector.learning.registry import ModelRegistry
from inspector.library.labels import seed_library_dir


def save_variant(path: Path, seed: int) -> str:
    """A tiny model with perturbed weights saved as a checkpoint; its model id."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.factory import create_model

    bundle = create_model("inspector-tiny", device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in bundle.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return save_checkpoint(bundle, path)


def tiny_config(root: Path) -> StationConfig:
    """A station on the (untrained, deterministic) tiny model with the generic surfaces library."""
    return StationConfig(
        model=ModelConfig("inspector-tiny", "cpu"),
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(root / "station.db")),
    )


def promote(station, qa, model_id: str, checkpoint: Path, base_id: str) -> None:
    """Register a candidate with figures no worse than its base, promote it, and switch the station to it."""
    figures = {"n": 10, "top1": 0.5, "top3": 0.8, "mrr": 0.6}
    registry = ModelRegistry(station.log)
    registry.register(
        model_id,
        str(checkpoint),
        qa,
        parent_id=base_id,
        data_hash="d",
        recipe={},
        figures={
            "baseline_model_id": base_id,
            "baseline": {"confirmations": figures, "typed_defects": figures},
            "candidate": {"confirmations": figures, "typed_defects": figures},
        },
    )
    registry.promote(model_id, qa, "test")
    if station.follow_registry() != model_id:
        raise AssertionError(f"the station did not switch to the promoted model {model_id[:12]}")


def tiny_dense_bundle(size: int, seed: int = 0, tokenizer=None, model_id: str = "t"):
    """A small untrained CLIP whose image tower is the station's (EfficientNet-Lite0 + avg pool +
    linear projection), so the dense frame path, maps and mid-level stages run on it in seconds."""
    import open_clip
    import torch
    from open_clip.model import set_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    from models.factory import ModelBundle

    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg={
            "timm_model_name": "tf_efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": size,
        },
        # open_clip's tokenizer ids reach 49407: a model that encodes text needs the full vocabulary
        text_cfg={
            "context_length": 16,
            "vocab_size": 49408 if tokenizer else 1000,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    )
    pp = merge_preprocess_dict(PreprocessCfg(), {"size": size, "mean": (0.5,) * 3, "std": (0.5,) * 3})
    set_model_preprocess_cfg(model, pp)
    transform = image_transform_v2(PreprocessCfg(**pp), is_train=False)
    return ModelBundle(
        model=model.eval(),
        preprocess=transform,
        train_preprocess=transform,
        tokenizer=tokenizer,
        arch="test",
        model_cfg={"embed_dim": 32},
        metadata={"input_size": size},
        model_id=model_id,
        device=torch.device("cpu"),
    )
