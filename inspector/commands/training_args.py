"""The fine-tuning options shared by `inspector finetune` and `python -m inspector.learning.job`.

Kept apart from both so that `inspector --help` does not import the decision log (and cv2).
"""

from __future__ import annotations

import argparse

from inspector.learning.engine import LOSSES, FinetuneConfig


def add_training_arguments(p: argparse.ArgumentParser, max_minutes: float | None) -> None:
    """Add the FinetuneConfig options to `p`; finetune_job.config_from_args reads them back."""
    p.add_argument("--loss", default="rankclip", choices=LOSSES)
    p.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    p.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size, help="global batch (lists span it)")
    p.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    p.add_argument("--unfreeze-image-blocks", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=max_minutes, help="wall-time cap of the training loop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="held-out split seed (keep it fixed across runs)")
    p.add_argument("--heldout-fraction", type=float, default=FinetuneConfig.heldout_fraction)
    p.add_argument("--forgetting-n", type=int, default=FinetuneConfig.forgetting_n)
    p.add_argument("--forgetting-size", type=int, default=FinetuneConfig.forgetting_size)
    p.add_argument("--no-resume", action="store_true", help="start over even if resumable state exists")
    p.add_argument("--device", default=None)
