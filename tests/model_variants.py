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
