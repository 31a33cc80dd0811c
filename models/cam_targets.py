"""Grad-CAM targets and reshape transforms for an image-embedding model, as small callables.

Same shape as pytorch_grad_cam.utils.model_targets / reshape_transforms: a target maps one
sample's model output (here a unit image embedding [D]) to a scalar to explain; a reshape
transform maps a layer's activations to [B, C, H, W] so Grad-CAM can pool gradients spatially.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.errors import ModelError


def _unit(vector: torch.Tensor, what: str) -> torch.Tensor:
    if vector.ndim != 1:
        raise ModelError(f"{what} must be a 1-D embedding, got shape {tuple(vector.shape)}")
    if not torch.isfinite(vector).all() or float(vector.norm()) == 0.0:
        raise ModelError(f"{what} must be finite and non-zero")
    # Re-normalise so the target is a true cosine even for a mean of unit vectors.
    return F.normalize(vector.detach().float(), dim=0)


class SimilarityTarget:
    """Cosine similarity of a (normalised) image embedding to a fixed text embedding."""

    def __init__(self, text_embedding: torch.Tensor) -> None:
        self.text = _unit(text_embedding, "text_embedding")

    def __call__(self, image_embedding: torch.Tensor) -> torch.Tensor:
        return image_embedding @ self.text.to(image_embedding.device)


class ContrastTarget:
    """sim(image, first) - sim(image, second): "why the first description and not the second"."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor) -> None:
        self.first = _unit(first, "text_embedding")
        self.second = _unit(second, "versus")
        if self.first.shape != self.second.shape:
            raise ModelError(f"versus has {self.second.shape[0]} dimensions, text_embedding {self.first.shape[0]}")
        # Why one vector: sim1 - sim2 is linear in the embedding, so one dot product gives both terms.
        self.direction = self.first - self.second

    def __call__(self, image_embedding: torch.Tensor) -> torch.Tensor:
        return image_embedding @ self.direction.to(image_embedding.device)


class TokensToGrid:
    """ViT tokens [B, N, C] (or [N, B, C]) -> [B, C, gh, gw], dropping the leading non-patch tokens.

    The number of leading tokens (class token, registers) is N - gh*gw, so one transform serves
    towers with or without a class token; 4-D inputs pass through unchanged.
    """

    def __init__(self, grid: tuple[int, int], batch_first: bool = True) -> None:
        if len(grid) != 2 or min(grid) < 1:
            raise ModelError(f"grid must be (rows, cols) >= 1, got {grid}")
        self.grid = (int(grid[0]), int(grid[1]))
        self.batch_first = batch_first

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim == 4:
            return tokens
        if tokens.ndim != 3:
            raise ModelError(f"expected ViT tokens [B, N, C], got shape {tuple(tokens.shape)}")
        if not self.batch_first:
            tokens = tokens.transpose(0, 1)
        batch, n, channels = tokens.shape
        rows, cols = self.grid
        extra = n - rows * cols
        if extra < 0:
            raise ModelError(
                f"layer output has {n} tokens, fewer than the {rows}x{cols} patch grid: "
                "choose a layer inside the transformer blocks"
            )
        patches = tokens[:, extra:, :].reshape(batch, rows, cols, channels)
        return patches.permute(0, 3, 1, 2)


class SoftmaxTarget:
    """The softmax probability of one label among a library's labels (minus another's, with `versus`).

    Logits are logit_scale * cos(image, label) over the library's rows, so this is pytorch-grad-cam's
    ClassifierOutputSoftmaxTarget(index) on a model whose output is those logits. Its gradient,
    p_c (t_c - sum_k p_k t_k), credits what speaks for this label *rather than the others*, not what
    any label would match.
    """

    def __init__(self, library: torch.Tensor, index: int, logit_scale: float, versus: int | None = None) -> None:
        if library.ndim != 2 or library.shape[0] < 2:
            raise ModelError(f"library must be [K >= 2, D] label embeddings, got shape {tuple(library.shape)}")
        if not 0 <= index < library.shape[0] or (versus is not None and not 0 <= versus < library.shape[0]):
            raise ModelError(f"label index out of range for a library of {library.shape[0]} labels")
        if not logit_scale > 0:
            raise ModelError(f"logit_scale must be positive, got {logit_scale}")
        self.library = F.normalize(library.detach().float(), dim=1)
        self.index, self.versus, self.scale = index, versus, float(logit_scale)

    def __call__(self, image_embedding: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.scale * (self.library.to(image_embedding.device) @ image_embedding), dim=-1)
        return probs[self.index] - (probs[self.versus] if self.versus is not None else 0.0)
