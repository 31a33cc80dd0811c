"""What search stores per inspection: the global image embedding and the few strongest local ones.

A small defect moves the whole-image embedding little; a tile that holds it moves much more. The
"strongest" tiles are those least like the whole image (lowest cosine to the global embedding):
where a part differs from its surroundings is where a defect is likely to be.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.frame.scorer import Scorer

# Local embeddings kept per inspection (of the 5 tiles below); each costs dim * 2 bytes on disk.
N_LOCAL = 2


def tiles(rgb: np.ndarray) -> list[np.ndarray]:
    """Four overlapping quadrants (each 5/8 of a side) and the centre half: five crops."""
    h, w = rgb.shape[:2]
    th, tw = max(1, (5 * h) // 8), max(1, (5 * w) // 8)
    corners = [(0, 0), (0, w - tw), (h - th, 0), (h - th, w - tw)]
    crops = [rgb[y : y + th, x : x + tw] for y, x in corners]
    crops.append(rgb[h // 4 : h // 4 + max(1, h // 2), w // 4 : w // 4 + max(1, w // 2)])
    return [np.ascontiguousarray(c) for c in crops]


def strongest_locals(global_vec: np.ndarray, local_vecs: np.ndarray, n_local: int = N_LOCAL) -> np.ndarray:
    """The `n_local` tile embeddings least like the global one, most distinct first."""
    order = np.argsort(local_vecs @ global_vec, kind="stable")[:n_local]
    return local_vecs[order]


def search_vectors(
    scorer: Scorer, rgb: np.ndarray, global_vec: np.ndarray | None = None, n_local: int = N_LOCAL
) -> np.ndarray:
    """[1 + n_local, dim] float32: the global embedding (the one the ranking used when given) and
    the strongest local ones."""
    if global_vec is None:
        global_vec = scorer.embed_images([rgb])[0]
    if n_local <= 0:
        return np.asarray(global_vec, np.float32)[None, :]
    local = scorer.embed_images(tiles(rgb))
    return np.vstack([np.asarray(global_vec, np.float32)[None, :], strongest_locals(global_vec, local, n_local)])


def unit(vectors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero."""
    v = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)
