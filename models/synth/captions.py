"""Compose varied captions for generated samples from their metadata.

A caption = frame x noun phrase x location, where the noun phrase stacks a defect synonym with words
the metadata licenses (faint, size, dark/bright, curved, branching, how many) - so one image can be
described hundreds of ways and every word is true of it. The prototype found paraphrase variety to be
the strongest lever on accuracy. split="test" draws from the held-out vocabulary (models.synth.vocab)
that training never sees; the description libraries are `train_descriptions` / `heldout_descriptions`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.synth import vocab
from models.synth.vocab import HELDOUT, TRAIN, Words

_NUMBERS = {2: "two", 3: "three", 4: "four"}
_MANY = {
    "train": ("a cluster of", "a group of", "many", "numerous", "lots of"),
    "test": ("a scattering of", "a sprinkling of", "a swarm of"),
}
_WIDE = {"train": ("widespread", "spread-out"), "test": ("scattered",)}
_TONE_WORDS = {
    "dark": ("dark",),
    "brown": ("brown", "brownish"),
    "yellowish": ("yellowish", "yellow"),
    "rusty": ("rusty", "rust-coloured"),
    "oily": ("oily", "dark oily"),
    "whitish": ("whitish", "white"),
}
_LINES = ("scratch", "crack")  # "long" / "short" suit lines; "large" / "small" suit patches


def _words(defect: str, split: str) -> Words:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    table = TRAIN if split == "train" else HELDOUT
    if defect not in table:
        raise ValueError(f"no caption vocabulary for defect {defect!r}; known: {sorted(table)}")
    return table[defect]


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    vowel = phrase[:1] in "aeiou" and not phrase.startswith(("uni", "use", "one"))
    return ("an " if vowel else "a ") + phrase


def _appearance(meta: Mapping, rng: np.random.Generator) -> list[str]:
    """Words the drawn instance earns from its metadata (shared by both splits: they are not the class)."""
    out: list[str] = []
    if meta.get("polarity"):
        out.append("dark" if meta["polarity"] == "dark" else _pick(rng, ("bright", "shiny")))
    if meta.get("curved") is not None and meta["defect"] == "scratch":
        out.append("curved" if meta["curved"] else "straight")
    if meta.get("orientation") and meta["defect"] in _LINES:
        out.append(meta["orientation"])
    if meta.get("tone"):
        out.append(_pick(rng, _TONE_WORDS[meta["tone"]]))
    if meta.get("ring"):
        out.append("ring-shaped")
    if meta.get("void") == "dark":
        out.append(_pick(rng, ("dark", "black")))
    return out


def _noun_phrase(meta: Mapping, words: Words, rng: np.random.Generator, split: str) -> str:
    defect, count = meta["defect"], int(meta.get("count") or 1)
    sing, plur = _pick(rng, words.nouns)
    mods: list[str] = []
    if meta.get("faint") and rng.random() < 0.7:
        mods.append(_pick(rng, vocab.FAINT[split]))
    if meta.get("size") and _one_place(meta) and rng.random() < 0.5:
        mods.append(_pick(rng, (vocab.LINE_SIZE if defect in _LINES else vocab.SIZE)[meta["size"]]))
    looks = _appearance(meta, rng)
    if looks and rng.random() < 0.6:
        mods.append(_pick(rng, looks))
    if rng.random() < 0.4:
        mods.append(_pick(rng, words.adjectives))
    if meta.get("scattered") and rng.random() < 0.6:
        mods.insert(0, _pick(rng, _WIDE[split]))
    # drop empties, repeats and words the noun already says ("oily oil spot")
    mods = [m for i, m in enumerate(mods) if m and m not in mods[:i] and m[:3] not in f"{sing} {plur}"][:3]
    if defect == "pitting":  # pits come in numbers
        return f"{_pick(rng, _MANY[split])} {' '.join(mods + [plur])}"
    if count > 1 and plur:
        many = _NUMBERS.get(count, "several") if rng.random() < 0.5 else _pick(rng, ("several", "multiple"))
        return f"{many} {' '.join(mods + [plur])}"
    return _article(" ".join(mods + [sing]))


def _one_place(meta: Mapping) -> bool:
    """Whether the mask's box and centre describe one thing: several holes are placed independently."""
    return not (meta["defect"] == "hole" and int(meta.get("count") or 1) > 1)


def _location(meta: Mapping, rng: np.random.Generator, split: str) -> str:
    if not _one_place(meta):
        return ""
    if meta.get("spans"):
        return " " + _pick(rng, vocab.SPANS[split])
    if meta.get("near_edge") and rng.random() < 0.5:
        return " " + _pick(rng, vocab.NEAR_EDGE[split])
    place = meta.get("location")
    if not place:
        return ""
    if "-" in place:  # a corner
        return " " + _pick(rng, vocab.CORNER).format(place)
    return " " + _pick(rng, vocab.PLACE[place])


def caption(sample_meta: Mapping, rng: np.random.Generator, split: str = "train") -> str:
    """One caption for a sample, drawn from `split`'s vocabulary ("train" or held-out "test").

    `sample_meta` needs "defect"; "surface" and the geometry from draw_defect make it richer.
    """
    defect = sample_meta["defect"]
    words = _words(defect, split)
    surf = _pick(rng, vocab.SURFACE_WORDS.get(sample_meta.get("surface", ""), ("surface",)))
    if defect == "ok":
        noun, adj = _pick(rng, words.nouns)[0], _pick(rng, words.adjectives)
        return _pick(rng, vocab.OK_FRAMES[split]).format(
            adj_noun=_article(f"{adj} {noun}"),
            adj_surf=_article(f"{adj} {surf}"),
            noun=_article(noun),
            surf=surf,
            sentence=_pick(rng, words.sentences),
        )
    if rng.random() < 0.2:  # a whole plain sentence now and then, like a library description
        return _pick(rng, words.sentences)
    loc = _location(sample_meta, rng, split) if rng.random() < 0.65 else ""
    frame = _pick(rng, vocab.FRAMES[split])
    return frame.format(np=_noun_phrase(sample_meta, words, rng, split), loc=loc, surf=surf)


def _descriptions(words: Words, defect: str) -> list[str]:
    out = list(words.sentences)
    for sing, plur in words.nouns:
        out.append(f"{plur} in the surface" if defect == "pitting" and plur else _article(sing))
    return list(dict.fromkeys(out))


def train_descriptions(defect: str) -> list[str]:
    """Plain class descriptions from the training vocabulary (usable as a description library)."""
    return _descriptions(_words(defect, "train"), defect)


def heldout_descriptions(defect: str) -> list[str]:
    """Plain class descriptions from the held-out vocabulary; no training caption uses their wording."""
    return _descriptions(_words(defect, "test"), defect)
