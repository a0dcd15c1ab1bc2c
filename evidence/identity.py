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
# The narrowest vehicle, in pixels, whose plate can be read. A plate's characters are 90 mm tall on
# a car about 1.8 m wide: a vehicle 160 px wide shows them 8 px tall, below what the OCR reads. The
# OCR enlarges every crop to 736 px before looking for text, so a distant car cost 0.37 s per pack
# for nothing (the car-park camera's cars are 50-130 px wide).
MIN_PLATE_VEHICLE_PX = 160


def identify(violation: Violation, reader: TextReader) -> Violation:
    if violation.rule.kind == "illegal_parking":
        reading = None
        for key in (violation.threshold, violation.last_seen, violation.first_seen):
            x1, _, x2, _ = key.subject[0].box
            if x2 - x1 < MIN_PLATE_VEHICLE_PX:
                continue  # too far away to read here; another key frame may be closer
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
