"""Who the offender is: the plate of a parked vehicle, the sign over a shop front.

A valid plate becomes the case subject, so the same car is linked across places and days;
shop-sign text is recorded beside the zone's shop record for the officer to compare.
"""
from __future__ import annotations

from dataclasses import replace

from nonsite.rules import Violation
from nonsite.vision.plates import TextReader

from .annotate import crop

SIGN_CONFIDENCE = 0.8


def identify(violation: Violation, reader: TextReader) -> Violation:
    if violation.rule.kind == "illegal_parking":
        reading = None
        for key in (violation.threshold, violation.last_seen, violation.first_seen):
            found = reader.plate(crop(key.frame.image, key.subject[0].box, 0.05))
            if found is None:
                break  # no text on the vehicle from this camera's angle: the other key frames show the same
            if reading is None or (found.valid, found.confidence) > (reading.valid, reading.confidence):
                reading = found
            if reading.valid:
                break
        plate = ({"text": reading.text, "confidence": round(reading.confidence, 4), "format": reading.format, "valid": reading.valid}
                 if reading else None)
        return replace(violation, extras={**violation.extras, "plate": plate})
    if violation.rule.kind == "spillover_business":
        lines = [{"text": text, "confidence": round(score, 4)} for text, score in reader.lines(violation.threshold.frame.image, SIGN_CONFIDENCE)
                 if len(text.strip()) >= 2]
        return replace(violation, extras={**violation.extras, "shop_sign_text": lines})
    return violation
