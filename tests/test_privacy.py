"""Disclosure copies: bystanders blurred on real images, the subject untouched, originals kept out."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np

from nonsite.evidence.disclosure import disclosure_image


def test_people_beside_the_subject_are_blurred_and_the_subject_is_not(coco):
    import ultralytics

    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    found = coco.detect([image])[0]
    bus = [d for d in found if d.class_name == "bus"]
    people = [d for d in found if d.class_name == "person"]
    assert len(bus) == 1 and len(people) >= 3
    copy = disclosure_image(image, bus, people)
    x1, y1 = (max(int(v), 0) for v in bus[0].box[:2])
    x2, y2 = (int(np.ceil(v)) for v in bus[0].box[2:])
    assert np.array_equal(copy[y1:y2, x1:x2], image[y1:y2, x1:x2])  # the subject stays exactly as recorded
    bystander = np.zeros(image.shape[:2], bool)
    for person in people:
        px1, py1 = (max(int(v), 0) for v in person.box[:2])
        px2, py2 = (int(np.ceil(v)) for v in person.box[2:])
        bystander[py1:py2, px1:px2] = True
    bystander[y1:y2, x1:x2] = False  # the parts of people in front of the bus belong to the subject's box
    assert bystander.sum() > 5000
    changed = np.abs(copy.astype(int) - image.astype(int)).sum(axis=2)
    assert changed[bystander].mean() > 10  # pixelated
    assert changed[~bystander].max() == 0  # nothing else touched (no vehicles beside the bus here)


def test_the_public_dossier_holds_disclosure_copies_and_no_originals(review):
    from fastapi.testclient import TestClient

    from nonsite.review_ui import create_app

    client = TestClient(create_app(review), headers={"Accept-Language": "en"})
    csrf = client.post("/api/login", json={"username": "alice", "password": "alice-password"}).json()["csrf"]
    pack = client.get("/api/packs", params={"category": "illegal_parking"}).json()[0]["pack_id"]
    case_id = client.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}, headers={"X-CSRF-Token": csrf}).json()["case_id"]
    public = zipfile.ZipFile(io.BytesIO(client.get(f"/api/cases/{case_id}/dossier", params={"audience": "public"}).content))
    officers = zipfile.ZipFile(io.BytesIO(client.get(f"/api/cases/{case_id}/dossier").content))
    public_names, officer_names = set(public.namelist()), set(officers.namelist())
    assert any("/disclosure/threshold.jpg" in n for n in public_names)
    assert not any("/original/" in n or "/annotated/" in n or "/crops/" in n for n in public_names)
    assert any("/original/threshold" in n for n in officer_names)
    assert "disclosure/threshold.jpg" in public.read("summary.html").decode()
