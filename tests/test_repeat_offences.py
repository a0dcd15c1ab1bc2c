"""首违不罚 counts offences the way the law does: per shop licence or plate, in cases (not packs),
leaving out cases closed as 不予处罚 and cases older than the look-back period; a vehicle whose
plate was not read is sent for identification by hand instead of being given a tracker's identity."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from nonsite.evidence.schema import cases, packs_table
from nonsite.review_ui import create_app

from .officers import login

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

@pytest.fixture()
def app(review):
    return create_app(review)


def _named(review, pack_id: str, **names) -> None:
    with review.engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack_id).values(**names))


def _confirm(client, pack_id: str) -> int:
    response = client.post(f"/api/packs/{pack_id}/decision", json={"decision": "confirm"})
    assert response.status_code == 200, response.text
    return response.json()["case_id"]


def _case(client, case_id: int) -> dict:
    return client.get(f"/api/cases/{case_id}").json()


def test_repeat_offences_count_cases_of_one_plate_not_dismissed_and_within_the_look_back(app, review):
    alice, sam = login(app, "alice"), login(app, "sam")
    cars = alice.get("/api/packs", params={"source": "cam-carpark-wide", "per_page": 10}).json()
    assert len(cars) >= 5
    for n, pack in enumerate(cars[:4]):  # four sightings of one car (one plate), each its own subject for the tracker
        _named(review, pack["pack_id"], plate="浙A12345", subject_key=f"track-{n}")
    dismissed = _confirm(alice, cars[0]["pack_id"])
    assert _case(alice, dismissed)["prior_confirmed"] == 0  # a first offence
    asked = alice.post(f"/api/cases/{dismissed}/transition", json={"to_state": "closed", "outcome": "dismissed", "note": "不予处罚: permit shown"})
    assert asked.status_code == 202
    approval = asked.json()["pending_approval"]["id"]
    assert sam.post(f"/api/cases/{dismissed}/approvals/{approval}", json={"approve": True}).status_code == 200

    second = _confirm(alice, cars[1]["pack_id"])
    assert second != dismissed
    detail = _case(alice, second)
    assert detail["party"] == {"kind": "plate", "value": "浙A12345"}
    assert detail["prior_confirmed"] == 0, "a case closed as not penalised is not an earlier offence"

    third = _confirm(alice, cars[2]["pack_id"])
    detail = _case(alice, third)
    assert detail["prior_confirmed"] == 1 and [e["id"] for e in detail["earlier_cases"]] == [second]
    page = sam.get(f"/cases/{third}").text
    assert 'id="repeat"' in page and f'href="/cases/{second}"' in page  # the banner links the earlier case

    with review.engine.begin() as conn:  # the earlier case, moved back past the 365-day look-back
        opened = conn.execute(select(cases.c.created_at).where(cases.c.id == second)).scalar_one()
        conn.execute(update(cases).where(cases.c.id == second).values(created_at=opened - timedelta(days=400)))
    assert _case(alice, third)["prior_confirmed"] == 0

    fourth = _confirm(alice, cars[3]["pack_id"])  # ten photos of one car are one offence: counted in cases
    assert _case(alice, fourth)["prior_confirmed"] == 1  # the third case (the second is out of the look-back)


def test_a_vehicle_without_a_read_plate_is_flagged_for_identification_not_counted(app, review):
    alice = login(app, "alice", language="zh-CN")
    pack = alice.get("/api/packs", params={"source": "cam-carpark-wide"}).json()[0]
    _named(review, pack["pack_id"], plate=None)
    case_id = _confirm(alice, pack["pack_id"])
    detail = _case(alice, case_id)
    assert detail["party"]["kind"] == "unidentified" and detail["earlier_cases"] == []
    page = alice.get(f"/cases/{case_id}").text
    assert 'id="identify"' in page and "需人工" in page and 'id="first"' not in page


def test_shop_offences_count_by_licence_across_zones_and_cameras(app, review):
    alice = login(app, "alice")
    spill = alice.get("/api/packs", params={"category": "spillover_business"}).json()
    parked = alice.get("/api/packs", params={"source": "cam-carpark-wide"}).json()
    assert spill and parked
    licence = "91330102MA2H3X4Y5Z"
    _named(review, spill[0]["pack_id"], shop_licence=licence)
    _named(review, parked[0]["pack_id"], shop_licence=licence, category="spillover_business", subject_key="other-zone")
    earlier = _confirm(alice, spill[0]["pack_id"])
    later = _confirm(alice, parked[0]["pack_id"])
    detail = _case(alice, later)
    assert detail["party"] == {"kind": "licence", "value": licence} and [e["id"] for e in detail["earlier_cases"]] == [earlier]
