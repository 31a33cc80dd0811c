"""What moved, in plain words, for the drift banner: the reference's and the window's figure of each
metric that alarmed (a share for rates and the label mix, a median for continuous statistics)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

_RATES = {
    "agreed": "operators agreed with the #1 label on {w} of answers (reference {r})",
    "none_of_these": 'operators answered "none of these" on {w} of answers (reference {r})',
    "review": "{w} of parts went to the review lane (reference {r})",
    "open_set": "{w} of parts matched nothing in the library (reference {r})",
}
_CONTINUOUS = {
    "score": "the top score's median went from {r} to {w}",
    "margin": "the margin between #1 and #2 (median) went from {r} to {w}",
    "brightness": "image brightness (median grey level) went from {r} to {w}",
    "sharpness": "image sharpness (median log Laplacian variance) went from {r} to {w}",
}


def _share(x: float) -> str:
    return f"{100 * x:.0f} %"


def describe(metric: str, reference: Sequence, window: Sequence) -> str:
    """One plain sentence: how `metric` differs between the reference parts and the window's."""
    if metric in _RATES:
        shares = []
        for parts in (reference, window):
            known = [bool(f) for p in parts if (f := getattr(p, metric)) is not None]
            shares.append(sum(known) / len(known) if known else 0.0)
        return _RATES[metric].format(r=_share(shares[0]), w=_share(shares[1]))
    if metric == "label":
        ref, win = Counter(p.label for p in reference), Counter(p.label for p in window)
        share = {lab: (ref[lab] / len(reference), win[lab] / len(window)) for lab in {*ref, *win}}
        lab, (r, w) = max(share.items(), key=lambda t: (abs(t[1][1] - t[1][0]), t[0]))
        new = "" if ref[lab] else ", a label the reference never had as #1"
        return f"#1 label {lab!r} on {_share(w)} of parts (reference {_share(r)}{new})"
    if metric in _CONTINUOUS:
        r, w = (float(np.median([getattr(p, metric) for p in parts])) for parts in (reference, window))
        digits = 0 if metric == "brightness" else 2
        return _CONTINUOUS[metric].format(r=f"{r:.{digits}f}", w=f"{w:.{digits}f}")
    return metric
