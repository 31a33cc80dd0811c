"""Typed defect painters. Each returns the surface with the defect painted (float RGB) and facts about it.

The painters only paint; `models.synth.defects.draw_defect` turns the result into an exact mask,
checks that the defect is visible and writes the metadata. Sizes are given at 224 px and scale with the image.
`strong` asks for a high-contrast rendition: the retry after a draw turned out too faint.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from models.synth.noise import F32, smooth_noise, to3, white
from models.synth.shapes import bezier, blob, discs, polygon, random_walk, strokes

Painter = Callable[[np.ndarray, np.random.Generator, bool], tuple[np.ndarray, dict]]


def _centre(rng: np.random.Generator, s: int, margin: float) -> np.ndarray:
    return rng.uniform(margin * s, (1 - margin) * s, 2)


def _amp(rng: np.random.Generator, strong: bool, lo: float, hi: float, top: float) -> tuple[float, bool]:
    """An amplitude: usually in [lo, hi], sometimes deliberately faint, `top` when strong."""
    if strong:
        return top, False
    if rng.random() < 0.2:
        return rng.uniform(0.45 * lo, lo), True
    return rng.uniform(lo, hi), False


def _lum(img: np.ndarray) -> float:
    return float(img.mean())


def scratch(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """Thin straight or slightly curved lines, bright (exposed metal) or dark (dirt in the groove)."""
    s = base.shape[0]
    k = s / 224
    n = 1 if rng.random() < 0.7 else int(rng.integers(2, 5))
    length, angle, centre = rng.uniform(0.2, 0.85) * s, rng.uniform(0, math.pi), _centre(rng, s, 0.15)
    curved = bool(rng.random() < 0.4)
    paths = []
    for _ in range(n):  # several scratches run roughly parallel, as when a part is dragged
        a = angle + rng.normal(0, 0.08)
        d, perp = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        c = centre + perp * rng.uniform(-0.12, 0.12) * s * (n > 1) + d * rng.uniform(-0.1, 0.1) * s
        half = length * rng.uniform(0.6, 1.0) / 2
        bend = rng.uniform(0.06, 0.15) * rng.choice([-1, 1]) if curved else 0.0
        paths.append((bezier(c - d * half, c + d * half, bend), round(rng.choice([1, 1, 2, 2, 3]) * k)))
    cover = strokes(s, paths)
    if rng.random() < 0.5:
        cover = cv2.GaussianBlur(cover, (0, 0), rng.uniform(0.4, 0.8))
    cover *= np.clip(F32(0.7) + F32(0.35) * smooth_noise(s, rng, 5), 0.25, 1)  # pressure varies
    bright = _lum(base) < 128 if strong else bool(rng.random() < 0.55)
    amp, faint = _amp(rng, strong, 40, 100, 170)
    return base + to3(cover * F32(amp if bright else -amp)), {
        "count": n,
        "polarity": "bright" if bright else "dark",
        "curved": curved,
        "drawn_faint": faint,
    }


def crack(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A dark, jagged, branching random-walk line."""
    s = base.shape[0]
    k = s / 224
    length, heading = rng.uniform(0.3, 0.85) * s, rng.uniform(0, 2 * math.pi)
    if rng.random() < 0.3:  # cracks often start at an edge
        start = (
            np.array([0.0, rng.uniform(0.2, 0.8) * s])
            if rng.random() < 0.5
            else np.array([rng.uniform(0.2, 0.8) * s, 0.0])
        )
        heading = rng.uniform(-0.6, 0.6) + (0.0 if start[0] == 0 else math.pi / 2)
    else:
        start = _centre(rng, s, 0.2) - length / 2 * np.array([math.cos(heading), math.sin(heading)])
    main = random_walk(start, heading, length, rng.uniform(2.5, 5) * k, rng.uniform(0.3, 0.6), rng)
    thick = int(rng.choice([1, 2, 2])) * max(1, round(k))
    paths, n_branch = [(main, thick)], int(rng.choice([0, 1, 2, 2, 3, 4]))
    for _ in range(n_branch):
        i = int(rng.integers(len(main) // 5, max(len(main) // 5 + 1, len(main) * 9 // 10)))
        b_head = heading + rng.choice([-1, 1]) * rng.uniform(0.35, 1.0)
        b = random_walk(main[i], b_head, length * rng.uniform(0.12, 0.4), 3 * k, 0.45, rng)
        paths.append((b, max(1, thick - 1)))
    cover = strokes(s, paths)
    cover = np.maximum(cover, cv2.GaussianBlur(cover, (0, 0), 1.2 * k) * F32(0.35))  # shadowed lips
    depth, faint = _amp(rng, strong, 0.55, 0.9, 1.0)
    return base * to3(1 - cover * F32(depth)), {"count": 1, "branches": n_branch, "drawn_faint": faint}


_TONES = {  # per-channel direction of the colour change, then the words captions may use
    "dark": (-1.0, -1.0, -1.0),
    "brown": (-0.55, -0.8, -1.0),
    "yellowish": (0.05, -0.15, -0.9),
    "rusty": (0.15, -0.5, -0.9),
    "oily": (-0.9, -0.85, -0.65),
    "whitish": (1.0, 1.0, 0.95),
}


def stain(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A soft blob (or a few) of contamination with a colour cast; sometimes a darker drying ring."""
    s = base.shape[0]
    tone = ("whitish" if _lum(base) < 110 else "dark") if strong else str(rng.choice(list(_TONES)))
    n = 1 if rng.random() < 0.75 else int(rng.integers(2, 4))
    centre, r0 = _centre(rng, s, 0.12), rng.uniform(0.06, 0.2) * s
    cover, ring = np.zeros((s, s), F32), bool(rng.random() < 0.25)
    for i in range(n):
        r = r0 * (1 if i == 0 else rng.uniform(0.4, 0.8))
        c = centre + (0 if i == 0 else rng.normal(0, r0, 2))
        b, d = blob(
            s, tuple(c), (r, r * rng.uniform(0.5, 1.0)), rng.uniform(0, math.pi), rng, 0.4, rng.uniform(0.3, 0.9)
        )
        if ring:
            b = b * F32(0.45) + np.exp(-(((d - 0.9) / 0.08) ** 2)) * (d < 1) * F32(0.55)
        cover = np.maximum(cover, b)
    cover *= np.clip(F32(0.8) + F32(0.2) * smooth_noise(s, rng, 12), 0, 1)  # mottled, not flat
    amp, faint = _amp(rng, strong, 40, 100, 140)
    shift = np.array(_TONES[tone], F32) * F32(amp)
    return base + cv2.multiply(to3(cover), (*[float(v) for v in shift], 0.0)), {
        "count": n,
        "tone": tone,
        "ring": ring,
        "drawn_faint": faint,
    }


def pitting(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A cluster of small dark pits, each with a highlight on its far wall; sometimes scattered wide."""
    s = base.shape[0]
    k = s / 224
    scattered = bool(rng.random() < 0.25)
    n = int(rng.integers(12, 50) if scattered else rng.integers(5, 30))
    spread = (rng.uniform(0.18, 0.3) if scattered else rng.uniform(0.025, 0.08)) * s
    centre = _centre(rng, s, 0.3 if scattered else 0.12)
    pos = np.clip(centre + rng.normal(0, spread, (n, 2)), 2, s - 3)
    r = rng.uniform(0.9, 2.6, n) * k * (1.3 if strong else 1.0)
    light = rng.uniform(0, 2 * math.pi)
    off = np.array([math.cos(light), math.sin(light)])
    dark = discs(s, pos, r)
    hl = discs(s, pos + r[:, None] * 0.6 * off, np.maximum(0.6, 0.45 * r))
    depth, faint = _amp(rng, strong, 0.45, 0.8, 0.95)
    lift = 0.0 if faint else rng.uniform(25, 70)
    out = base * to3(1 - dark * F32(depth)) + to3(hl * dark * F32(lift))
    return out, {"count": n, "scattered": scattered, "drawn_faint": faint}


def burn(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A brown-to-black scorched patch with a bright heat-tint rim."""
    s = base.shape[0]
    r = rng.uniform(0.05, 0.17) * s
    centre = _centre(rng, s, 0.12)
    core, d = blob(
        s, tuple(centre), (r, r * rng.uniform(0.6, 1.0)), rng.uniform(0, math.pi), rng, 0.5, rng.uniform(0.3, 0.7)
    )
    core *= np.clip(F32(0.85) + F32(0.12) * white(s, rng), 0, 1)  # char is grainy
    light = bool(rng.random() < 0.25) and not strong  # discoloration: tan, not black
    target = np.array(
        [rng.uniform(110, 150), rng.uniform(75, 100), rng.uniform(40, 60)]
        if light
        else [rng.uniform(35, 75), rng.uniform(22, 45), rng.uniform(10, 28)],
        F32,
    )
    kk, faint = _amp(rng, strong, 0.7, 0.95, 1.0)
    a = to3(core * F32(kk))
    out = base * (1 - a) + a * target[None, None, :]
    w = rng.uniform(0.12, 0.25)  # a soft heat-tint halo, not a drawn outline
    rim = np.exp(-(((d - 1.05) / F32(w)) ** 2)) * (d < 1.05 + 2.2 * w)  # compact: cut past the tail
    rim_col = np.array([(235, 205, 130), (150, 160, 230), (230, 170, 100)][int(rng.integers(0, 3))], F32)
    rs = to3(rim * F32(rng.uniform(0.25, 0.55)))
    return out * (1 - rs) + rs * rim_col[None, None, :], {"count": 1, "light": light, "drawn_faint": faint}


def dent(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A dimple: a shading gradient (lit wall, shadowed wall, darker floor), sometimes bending the texture."""
    s = base.shape[0]
    r = rng.uniform(0.07, 0.17) * s  # visible radius; the Gaussian's sigma is about half of it
    sx, sy, ang = 0.55 * r, 0.55 * r * rng.uniform(0.6, 1.0), rng.uniform(0, math.pi)
    cx, cy = _centre(rng, s, 0.15)
    yy, xx = np.mgrid[0:s, 0:s].astype(F32)
    c, sn = F32(math.cos(ang)), F32(math.sin(ang))
    u, v = ((xx - F32(cx)) * c + (yy - F32(cy)) * sn) / F32(sx), (-(xx - F32(cx)) * sn + (yy - F32(cy)) * c) / F32(sy)
    q = u * u + v * v
    h = np.exp(-q / 2) * np.clip((F32(2.5) - np.sqrt(q)) / F32(0.5), 0, 1)  # compact support
    phi = rng.uniform(0, 2 * math.pi)
    shade = (u * F32(math.cos(phi)) + v * F32(math.sin(phi))) * h * F32(1.6) - h * F32(0.25)
    amp, faint = _amp(rng, strong, 45, 95, 140)
    src = base
    warped = bool(rng.random() < 0.5)
    if warped:  # the pressed-in area pulls the texture towards its centre
        pull = h * F32(rng.uniform(0.1, 0.25) * r)
        mx, my = xx - pull * (u * c - v * sn), yy - pull * (u * sn + v * c)
        src = cv2.remap(base, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    gain = F32(0.4) + to3(
        cv2.cvtColor(src, cv2.COLOR_RGB2GRAY) * F32(1 / 255)
    )  # shading scales with the surface's brightness
    return src + to3(shade * F32(amp)) * gain, {"count": 1, "warped": warped, "drawn_faint": faint}


def hole(base: np.ndarray, rng: np.random.Generator, strong: bool) -> tuple[np.ndarray, dict]:
    """A hard-edged void: dark, or the colour of whatever is behind the part; sometimes a lit rim."""
    s = base.shape[0]
    n = 1 if rng.random() < 0.85 else 2
    void = strong or rng.random() < 0.65
    bg = [(245, 245, 240), (90, 100, 115), (60, 110, 70), (15, 15, 18)][int(rng.integers(0, 4))]
    fill = np.array([rng.uniform(4, 35)] * 3 if void else bg, F32) + rng.normal(0, 4, 3).astype(F32)
    cover, edges = np.zeros((s, s), F32), []
    for _ in range(n):
        r, c, m = rng.uniform(0.03, 0.11) * s, _centre(rng, s, 0.08), int(rng.integers(16, 36))
        t = np.sort(rng.uniform(0, 2 * math.pi, m))
        rad = r * (1 + 0.18 * np.sin(t * rng.integers(2, 5) + rng.uniform(0, 6)) + rng.uniform(-0.1, 0.1, m))
        pts = c + np.stack([np.cos(t) * rad, np.sin(t) * rad * rng.uniform(0.6, 1.0)], 1)
        cover = np.maximum(cover, polygon(s, pts))
        edges.append((np.vstack([pts, pts[:1]]), 1))
    out = base * to3(1 - cover) + to3(cover) * fill[None, None, :]
    rim = bool(rng.random() < 0.5)
    if rim:  # the broken edge catches the light
        e = strokes(s, edges) * F32(0.6)
        out = out * to3(1 - e) + to3(e) * F32(rng.uniform(170, 240))
    return out, {"count": n, "void": "dark" if void else "background", "rim": rim, "drawn_faint": False}


PAINTERS: dict[str, Painter] = {
    "scratch": scratch,
    "crack": crack,
    "stain": stain,
    "pitting": pitting,
    "burn": burn,
    "dent": dent,
    "hole": hole,
}
