"""What kind of illegal building a changed region looks like, in the kinds the bureaus name.

A change map says *that* something changed; an officer needs to know *what*: a new roofed
structure on farmland, a rooftop addition, a coloured-steel shed (彩钢瓦: bright blue corrugated
roofs, a strong and common cue in Chinese survey imagery), bare soil from excavation, or vehicles
and machinery on a plot. Each kind below is decided from what the two surveys' pixels and the
project's detectors show inside the changed region, in this order, and the pack records which
cue decided it (``basis``) so the officer can weigh it:

1. ``vehicles_machinery``: a detector (excavator, vehicles) finds an object whose centre lies in
   the region. Only where the survey's pixels are fine enough for the model (drone mosaics, a few
   centimetres a pixel); on satellite-scale imagery this kind is never raised.
2. ``coloured_steel_roof``: at least a fifth of the region is saturated blue in the new survey,
   and at most half as much was before.
3. ``bare_soil``: most of the region is bare earth now (brown to ochre, moderately saturated) and
   was vegetation, or much less earth, before.
4. ``new_structure``: a built surface (unsaturated grey) now where there was vegetation or bare
   ground before, or where the surface was much smoother before (roofs, walls and their shadows
   are structured; open ground and slabs are not).
5. ``rooftop_addition``: the region was already built up and as structured before, and changed:
   something was added on or to an existing structure.
6. ``other_change``: none of the above is clear; the officer judges from the crops.

Material piles are not told apart: from above they look like soil or roofs, and no labelled
imagery of them exists here, so they fall under ``bare_soil`` or ``other_change``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .detection import Detection

KINDS = ("vehicles_machinery", "coloured_steel_roof", "bare_soil", "rooftop_addition", "new_structure", "other_change")
STEEL_SHARE, STEEL_GROWTH = 0.2, 2.0
SOIL_SHARE, VEGETATION_BEFORE = 0.5, 0.3
BUILT_AFTER, OPEN_BEFORE, TEXTURE_GROWTH = 0.4, 0.4, 1.5
BUILT_BEFORE, TEXTURE_KEPT = 0.6, 0.67


# What decided each kind, as a message with the figures filled in: English in manifests and GIS files,
# translated on the desk (these texts are the desk's message ids).
BASIS = {
    "vehicles_machinery": "{objects} object(s) detected in the region, best {best} at {confidence:.2f}",
    "coloured_steel_roof": "{after_steel:.0%} of the region is saturated blue now, {before_steel:.0%} before",
    "bare_soil": "{after_soil:.0%} bare soil now; before {before_soil:.0%} soil, {before_vegetation:.0%} vegetation",
    "new_structure": "{after_built:.0%} built surface now; before {before_open:.0%} vegetation or soil, texture {before_texture:.0f} -> "
                     "{after_texture:.0f}",
    "rooftop_addition": "already built up before ({before_built:.0%} grey surface, texture {before_texture:.0f} -> {after_texture:.0f}) "
                        "and changed",
    "other_change": "no cover cue is clear",
}


@dataclass(frozen=True)
class ChangeKind:
    kind: str
    values: dict  # the figures of the cue that decided it (``BASIS[kind]``) and the region's surface cover, before and after

    @property
    def basis(self) -> str:
        return BASIS[self.kind].format(**self.values)


def cover_shares(image: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Share of the region's pixels that look like blue steel, vegetation, bare soil or built (grey) surface."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hue, sat, val = (hsv[..., i][region].astype(np.int16) for i in range(3))
    b, g, r = (image[..., i][region].astype(np.int16) for i in range(3))
    count = max(int(region.sum()), 1)
    steel = (hue >= 95) & (hue <= 125) & (sat >= 40) & (val >= 90)  # hazy survey imagery mutes the blue
    vegetation = ((2 * g - r - b) > 20) & ~steel
    soil = (hue >= 5) & (hue <= 30) & (sat >= 30) & (sat <= 180) & (val >= 70) & ~vegetation
    built = (sat < 45) & (val >= 50) & ~vegetation
    return {name: round(float(mask.sum()) / count, 3) for name, mask in
            (("steel", steel), ("vegetation", vegetation), ("soil", soil), ("built", built))}


def texture(image: np.ndarray, region: np.ndarray) -> float:
    """Spread of the grey image's Laplacian inside the region: roofs, walls and their shadows are structured,
    open ground and smooth slabs are not. Compared between the two surveys only, so its scale does not matter."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[region].std()) if region.any() else 0.0


def _machines_in(region: np.ndarray, detections: Sequence[Detection]) -> list[Detection]:
    height, width = region.shape
    return [d for d in detections if region[min(int(d.centre[1]), height - 1), min(int(d.centre[0]), width - 1)]]


def classify_change(before: np.ndarray, after: np.ndarray, region: np.ndarray, detections: Sequence[Detection] = ()) -> ChangeKind:
    """The kind of one changed region; ``region`` is a boolean mask over both (aligned) crops, ``detections``
    what the detectors found on the new survey's crop."""
    was, now = cover_shares(before, region), cover_shares(after, region)
    was["texture"], now["texture"] = round(texture(before, region), 1), round(texture(after, region), 1)
    was["open"] = round(was["vegetation"] + was["soil"], 3)
    shares = {**{f"before_{k}": v for k, v in was.items()}, **{f"after_{k}": v for k, v in now.items()}}
    if machines := _machines_in(region, detections):
        best = max(machines, key=lambda d: d.confidence)
        return ChangeKind("vehicles_machinery", {**shares, "objects": len(machines), "best": best.label, "confidence": round(best.confidence, 3)})
    if now["steel"] >= STEEL_SHARE and now["steel"] >= STEEL_GROWTH * was["steel"]:
        return ChangeKind("coloured_steel_roof", shares)
    if now["soil"] >= SOIL_SHARE and (was["vegetation"] >= VEGETATION_BEFORE or now["soil"] - was["soil"] >= 0.25):
        return ChangeKind("bare_soil", shares)
    if now["built"] >= BUILT_AFTER and (was["open"] >= OPEN_BEFORE or now["texture"] >= TEXTURE_GROWTH * was["texture"]):
        return ChangeKind("new_structure", shares)
    if was["built"] >= BUILT_BEFORE and was["texture"] >= TEXTURE_KEPT * now["texture"]:
        return ChangeKind("rooftop_addition", shares)
    return ChangeKind("other_change", shares)
