"""The words captions are built from: per defect type, a TRAIN and a disjoint HELD-OUT vocabulary.

Held-out entries are different phrasings, not re-orderings: each one carries at least one word that
no training caption ever uses (tests check this over many draws), so a test caption measures whether
the model learned the language of a defect rather than memorised training strings.
Nouns are (singular, plural). Sentences are whole descriptions used as-is (no location words).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Words:
    """One split's vocabulary for one defect type."""

    nouns: tuple[tuple[str, str], ...]
    adjectives: tuple[str, ...]  # type words that fit any instance ("jagged" for a crack)
    sentences: tuple[str, ...]


TRAIN: dict[str, Words] = {
    "ok": Words(
        nouns=(("clean surface", "clean surfaces"), ("good part", "good parts"), ("defect-free part", "")),
        adjectives=("uniform", "even"),
        sentences=(
            "a clean surface with no visible defects",
            "no defects on the part",
            "the part looks good",
            "uniform finish, no marks and no damage",
            "a flawless surface",
            "no damage, nothing wrong",
        ),
    ),
    "scratch": Words(
        nouns=(
            ("scratch", "scratches"),
            ("scuff mark", "scuff marks"),
            ("scrape", "scrapes"),
            ("score line", "score lines"),
            ("scratch mark", "scratch marks"),
            ("abrasion line", "abrasion lines"),
        ),
        adjectives=("thin", "fine", "linear", "shallow"),
        sentences=(
            "a thin scratch across the surface",
            "the finish is scratched",
            "a scuff line scraped into the finish",
            "a linear scratch mark on the part",
        ),
    ),
    "crack": Words(
        nouns=(
            ("crack", "cracks"),
            ("fracture", "fractures"),
            ("fracture line", "fracture lines"),
            ("crack line", "crack lines"),
        ),
        adjectives=("jagged", "zigzag", "irregular", "branching"),
        sentences=(
            "a jagged crack in the material",
            "the part is cracked",
            "a branching fracture line",
            "a crack with irregular zigzag edges",
        ),
    ),
    "stain": Words(
        nouns=(
            ("stain", "stains"),
            ("smudge", "smudges"),
            ("blotch", "blotches"),
            ("oil spot", "oil spots"),
            ("dirt mark", "dirt marks"),
            ("residue patch", "residue patches"),
        ),
        adjectives=("soft-edged", "greasy", "dirty", "blurry"),
        sentences=(
            "a stain on the surface",
            "a blotch of contamination",
            "the surface is dirty with a smudge",
            "a soft-edged mark of residue",
            "contamination on the part",
        ),
    ),
    "pitting": Words(
        nouns=(("pit", "pits"), ("pockmark", "pockmarks"), ("crater", "craters")),
        adjectives=("pitted", "porous", "dotted"),
        sentences=(
            "a cluster of small pits in the surface",
            "porosity in the material",
            "the surface is pitted",
            "small round pockmarks on the part",
            "pitting corrosion",
        ),
    ),
    "burn": Words(
        nouns=(
            ("burn mark", "burn marks"),
            ("scorch mark", "scorch marks"),
            ("burnt spot", "burnt spots"),
            ("heat discoloration", "heat discolorations"),
            ("scorched area", "scorched areas"),
        ),
        adjectives=("brown", "blackened", "scorched", "burnt"),
        sentences=(
            "a burn mark with darkened edges",
            "heat discoloration on the surface",
            "the part is burnt",
            "a scorch mark with a bright rim",
            "a brown scorched patch",
        ),
    ),
    "dent": Words(
        nouns=(
            ("dent", "dents"),
            ("dimple", "dimples"),
            ("depression", "depressions"),
            ("ding", "dings"),
            ("indentation", "indentations"),
            ("deformation", "deformations"),
        ),
        adjectives=("shallow", "round", "pressed-in", "shaded"),
        sentences=(
            "a dent pressed into the surface",
            "a shallow dimple with shading around it",
            "the part is dented",
            "a deformed area, pushed in",
        ),
    ),
    "hole": Words(
        nouns=(
            ("hole", "holes"),
            ("void", "voids"),
            ("puncture", "punctures"),
            ("opening", "openings"),
            ("gap", "gaps"),
        ),
        adjectives=("hard-edged", "clean-cut", "gaping"),
        sentences=(
            "a hole punched through the part",
            "missing material, a gap in the surface",
            "a dark opening where material is missing",
            "the part has a hole in it",
        ),
    ),
}

HELDOUT: dict[str, Words] = {
    "ok": Words(
        nouns=(("unblemished part", "unblemished parts"), ("pristine finish", "")),
        adjectives=("intact", "acceptable"),
        sentences=(
            "nothing abnormal found",
            "the part passes inspection",
            "an intact, unblemished part",
            "conforming part, all good",
        ),
    ),
    "scratch": Words(
        nouns=(("graze", "grazes"), ("tool mark", "tool marks"), ("rub line", "rub lines")),
        adjectives=("scored", "etched"),
        sentences=(
            "a graze left by a sharp edge",
            "something sharp was dragged over it",
            "an etched streak from handling",
        ),
    ),
    "crack": Words(
        nouns=(("fissure", "fissures"), ("rift", "rifts"), ("split", "splits")),
        adjectives=("forked", "meandering"),
        sentences=(
            "a fissure running through it",
            "the material has split along a wandering path",
            "a forked rift in the part",
        ),
    ),
    "stain": Words(
        nouns=(("splotch", "splotches"), ("grime deposit", "grime deposits"), ("soiled area", "soiled areas")),
        adjectives=("murky", "grimy"),
        sentences=(
            "something has soiled the surface",
            "a murky splotch of foreign matter",
            "a film of grime on the part",
        ),
    ),
    "pitting": Words(
        nouns=(("pinhole", "pinholes"), ("pore", "pores"), ("tiny hole", "tiny holes")),
        adjectives=("peppered", "speckled"),
        sentences=(
            "tiny holes scattered over the part",
            "a peppered patch of pinholes",
            "the material is full of pores",
        ),
    ),
    "burn": Words(
        nouns=(("singe mark", "singe marks"), ("charred region", "charred regions"), ("sooty patch", "sooty patches")),
        adjectives=("charred", "singed"),
        sentences=(
            "a charred region from overheating",
            "it got too hot here and singed",
            "soot and heat damage on the part",
        ),
    ),
    "dent": Words(
        nouns=(("hollow", "hollows"), ("impact mark", "impact marks"), ("sunken spot", "sunken spots")),
        adjectives=("concave", "caved-in"),
        sentences=("a hollow pressed into the part", "the surface has caved in slightly", "a concave impact mark"),
    ),
    "hole": Words(
        nouns=(("perforation", "perforations"), ("breach", "breaches"), ("missing chunk", "missing chunks")),
        adjectives=("perforated", "breached"),
        sentences=(
            "a chunk of material has broken out",
            "a perforation through the wall",
            "a breach where the part is missing a piece",
        ),
    ),
}

# Words shared by both splits: they describe where and how big, not what the defect is.
SIZE = {
    "small": ("small", "little", "minor"),
    "medium": ("", "moderate", "mid-sized"),
    "large": ("large", "big", "extensive"),
}
LINE_SIZE = {"small": ("short",), "medium": ("", "medium-length"), "large": ("long",)}
FAINT = {"train": ("faint", "light", "barely visible", "subtle"), "test": ("hard-to-spot", "low-contrast")}
PLACE = {
    "center": ("in the center", "in the middle"),
    "top": ("at the top", "along the top"),
    "bottom": ("at the bottom", "along the bottom"),
    "left": ("on the left side", "at the left"),
    "right": ("on the right side", "at the right"),
}
CORNER = ("in the {} corner", "toward the {} corner")
NEAR_EDGE = {
    "train": ("near the edge", "close to the edge", "at the border"),
    "test": ("by the rim", "hugging the periphery"),
}
SPANS = {"train": ("across the surface", "across the whole part"), "test": ("from one side to the other",)}
SURFACE_WORDS = {
    "brushed_metal": ("brushed metal", "brushed steel", "machined aluminium"),
    "painted": ("painted panel", "painted surface"),
    "plastic": ("plastic housing", "moulded plastic"),
    "cast": ("cast part", "sand-cast metal"),
    "wood": ("wood panel", "wooden board"),
    "fabric": ("fabric", "woven cloth"),
    "grid": ("solar cell", "cell"),
    "speckle": ("speckled coating", "textured coating"),
    "textile": ("textile", "fabric"),
}
# Frames: {np} = noun phrase, {loc} = location phrase (may be empty), {surf} = surface words.
FRAMES = {
    "train": (
        "{np}{loc}",
        "a {surf} with {np}{loc}",
        "close-up of {np}{loc}",
        "visible: {np}{loc}",
        "the part shows {np}{loc}",
        "defect: {np}{loc}",
        "photo of {np} on a {surf}",
        "{np} on the {surf}{loc}",
        "inspection image with {np}{loc}",
    ),
    "test": (
        "we can see {np}{loc}",
        "this sample has {np}{loc}",
        "the operator noted {np}{loc}",
        "a picture of a {surf} that has {np}{loc}",
    ),
}
OK_FRAMES = {  # {adj_noun}, {adj_surf}, {noun} come with their article
    "train": (
        "{adj_noun}",
        "a clean {surf}",
        "photo of a {surf} with no defects",
        "{sentence}",
        "a good {surf}, no defects",
        "inspection image: {sentence}",
        "{adj_surf} with no defects",
    ),
    "test": ("{adj_surf}", "we can see {noun}", "{sentence}", "this sample is {noun}"),
}
