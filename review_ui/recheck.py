"""核查 by nonsite itself: after a rectification deadline, look at the site again and propose the outcome.

A case's packs say what was wrong and where: the newest pack's manifest gives the camera, the zone
(in the pixels of its key frame), the rule's classes and the models that saw it. ``recheck_case``
runs those models on the camera's current view (``camera_view.View``: one or several recent
pictures), decides "cleared" or "still_present" and stores the proposal in ``case_rechecks`` with
the after picture, its SHA-256 and an audit entry, in one transaction. An officer or supervisor
confirms it on the case page; nothing here changes the case's state. A drone case is rechecked by
the next flight over its site (``flight_recheck``), through the same counting, decision and storage
(``still_there``, ``majority``, ``store_proposal``).

What counts as still there (``Target.counted``): an object of the rule's classes standing in the
zone (its bottom centre, as the rule engine tests it) and, for rules that follow each object
(parking, vending), standing where the pack's subject stood: its centre within the rule's
``max_motion`` box diagonals of the subject's, the rule's own measure of a vehicle that has not
moved; another car elsewhere in a wide zone is not the offence being rechecked. Every box the model
reports counts, down to the model's own floor (``conf`` in its manifest), not only those above the
rule's ``min_confidence``: that floor keeps weak sightings from accusing anyone, while a recheck must
keep a weak sighting from clearing a case. On the real car-park footage replayed as the camera
service's 640 px snapshots, the default model scores distant parked cars 0.25 to 0.4: at the rule's
0.4, nine of about 30 parked cars were proposed cleared, at the model's floor one (the fp32 export
``make models`` builds) or two (the INT8 fallback) (tests/test_recheck.py).

Several pictures decide by majority (``decide``), so that one occlusion (a passing bus) or one missed
detection cannot clear a case, nor one passer-by keep it open: still present when the object is
seen in at least half of the pictures (a tie keeps it: a site is proposed cleared only when most
looks found it clear). The after picture is the newest one that agrees with the result.

The row's ``detections`` are what counted on the after picture, in its pixels, each {class,
confidence, box [x1, y1, x2, y2], model}: empty when cleared. The audit entry ``case.recheck_proposed``
names the rest: the after picture's SHA-256, the result, the before picture (the newest pack's sealed
key frame: {pack_id, path}, the pack the case page lists last), where the view came from, when the
after picture was taken, and how many pictures were looked at and showed the object.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import cv2
import numpy as np
from sqlalchemy import ColumnElement, Select, and_, exists, insert, select, update
from sqlalchemy.engine import Connection, Engine

from nonsite.evidence import EvidenceStore, PackManifest, read_manifest
from nonsite.evidence.audit import record
from nonsite.evidence.hashing import sha256_hex
from nonsite.evidence.schema import case_packs, case_rechecks, cases, packs_table
from nonsite.ingest import Frame
from nonsite.rules import RuleSpec
from nonsite.rules.zones import contains, distance
from nonsite.vision import Detection, Detector

from .camera_view import View

ACTOR = "nonsite"  # who the audit log names for what nonsite does by itself
AUTOMATIC = ("camera", "flight")  # origins of nonsite's own proposals; 'field' is an officer's photo
Result = Literal["cleared", "still_present"]
DetectorFor = Callable[[str], Detector]  # a loaded detector by registry name (``LoadedModels``)


class RecheckRefused(Exception):
    """No proposal was stored; ``code`` says why, for the page to show in the officer's language."""

    def __init__(self, case_id: int, code: str, detail: str = ""):
        super().__init__(f"case {case_id}: {code}" + (f" ({detail})" if detail else ""))
        self.case_id, self.code = case_id, code


class LoadedModels:
    """Detectors loaded once per process, by registry name: a recheck a day per case must not load a model each time."""

    def __init__(self, registry, device: str = "cpu"):
        self.registry = registry
        self.device = device
        self._loaded: dict[str, Detector] = {}

    def __call__(self, name: str) -> Detector:
        if name not in self._loaded:
            self._loaded[name] = self.registry.detector(name, self.device)
        return self._loaded[name]


@dataclass(frozen=True)
class Place:
    """Where a followed object stood on a picture, and how far from there (the rule's ``max_motion`` box diagonals,
    in the picture's pixels) the same object still counts."""

    centre: tuple[float, float]
    reach: float


def still_there(rule: RuleSpec, zone: Sequence[tuple[float, float]], place: Place | None, detections: Sequence[Detection],
                at: Callable[[Detection], tuple[float, float]] = lambda d: d.bottom_centre) -> list[Detection]:
    """The detections that show the offence still there: the rule's classes standing in the zone (``at``: the point of the
    box tested, where it touches the ground; from straight above, its centre) and, for rules that follow each object, at
    its place (see the module's doc)."""
    found = [d for d in detections if d.is_one_of(rule.classes) and contains(zone, at(d))]
    return found if place is None else [d for d in found if distance(d.centre, place.centre) <= place.reach]


@dataclass(frozen=True)
class Target:
    """What a recheck looks for, as the case's newest pack recorded it."""

    manifest: PackManifest

    @property
    def camera(self) -> str:
        return self.manifest.source.id

    @property
    def flight(self) -> bool:
        """A drone pack: the next flight over the site rechecks it, not a camera."""
        return self.manifest.drone is not None

    @property
    def before(self) -> dict:
        """The sealed key frame the after picture is shown beside."""
        return {"pack_id": self.manifest.pack_id, "path": self.manifest.key_frames["threshold"].original}

    def _scale(self, image: np.ndarray) -> tuple[float, float]:
        """From the key frame's pixels to ``image``'s: the fleet's snapshots are smaller than the camera's frames."""
        width, height = self.manifest.key_frames["threshold"].size
        return image.shape[1] / width, image.shape[0] / height

    def zone(self, image: np.ndarray) -> list[tuple[float, float]]:
        sx, sy = self._scale(image)
        return [(x * sx, y * sy) for x, y in self.manifest.zone.polygon]

    def place(self, image: np.ndarray) -> Place | None:
        """Where the subject stood, for rules that follow each object; None: anything in the zone counts."""
        if not self.manifest.rule.per_object:
            return None
        sx, sy = self._scale(image)
        x1, y1, x2, y2 = self.manifest.key_frames["threshold"].subject[0].box
        return Place(((x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy), self.manifest.rule.max_motion * math.hypot((x2 - x1) * sx, (y2 - y1) * sy))

    def counted(self, image: np.ndarray, detections: Sequence[Detection]) -> list[Detection]:
        """The detections on ``image`` that show the offence still there (see the module's doc)."""
        return still_there(self.manifest.rule, self.zone(image), self.place(image), detections)


@dataclass(frozen=True)
class Decision:
    """What the pictures show: per picture what counted, the result, and which picture shows it."""

    counted: tuple[tuple[Detection, ...], ...]
    result: Result
    after: int  # index of the after picture: the newest that agrees with the result

    @property
    def seen_in(self) -> int:
        return sum(bool(c) for c in self.counted)


def decide(target: Target, frames: Sequence[Frame], detections: Sequence[Sequence[Detection]]) -> Decision:
    """The majority of the pictures decides; a tie keeps the case (see the module's doc)."""
    return majority([f.captured_at for f in frames], [target.counted(frame.image, found) for frame, found in zip(frames, detections)])


def majority(taken_at: Sequence[datetime], counted: Sequence[Sequence[Detection]]) -> Decision:
    """From what counted on each picture (taken at ``taken_at``): still present when seen in at least half of them."""
    shown = tuple(tuple(c) for c in counted)
    still = 2 * sum(bool(c) for c in shown) >= len(shown)
    after = max((i for i, c in enumerate(shown) if bool(c) == still), key=lambda i: taken_at[i])
    return Decision(shown, "still_present" if still else "cleared", after)


@dataclass(frozen=True)
class RecheckResult:
    """A stored proposal: what nonsite saw and proposes; ``recheck_id`` is its ``case_rechecks`` row."""

    case_id: int
    recheck_id: int
    at: datetime
    origin: str
    result: Result
    looks: int  # pictures looked at
    seen_in: int  # of them, those where the object was seen
    counted: tuple[Detection, ...]  # on the after picture, in its pixels
    zone: tuple[tuple[float, float], ...]  # in the after picture's pixels
    before: dict  # {'pack_id', 'path'}: the pack's sealed key frame
    after_jpeg: bytes
    sha256: str


def newest_pack(case_id) -> Select:
    """SQL: the id of the case's newest pack, the one a recheck looks for (``case_id``: a number, or ``cases.c.id``)."""
    return (select(packs_table.c.pack_id).join(case_packs, case_packs.c.pack_id == packs_table.c.pack_id)
            .where(case_packs.c.case_id == case_id).order_by(packs_table.c.threshold_at.desc()).limit(1))


def case_target(engine: Engine, store: EvidenceStore, case_id: int) -> Target:
    """The case's newest pack, as a ``Target``; RecheckRefused 'no_pack' for a case without one."""
    with engine.connect() as conn:
        pack_id = conn.execute(newest_pack(case_id)).scalar()
    if pack_id is None:
        raise RecheckRefused(case_id, "no_pack")
    return Target(read_manifest(store, pack_id))


def _proposed_since_deadline():
    """SQL: the case already has nonsite's proposal made at or after its deadline."""
    return exists(select(case_rechecks.c.id).where(and_(
        case_rechecks.c.case_id == cases.c.id, case_rechecks.c.origin.in_(AUTOMATIC), case_rechecks.c.at >= cases.c.deadline)))


def waiting(now: datetime) -> ColumnElement[bool]:
    """SQL: the case waits for its 核查, its rectification deadline has passed, and nonsite has not proposed since."""
    return and_(cases.c.state == "rectification_due", cases.c.deadline.is_not(None), cases.c.deadline <= now, ~_proposed_since_deadline())


def due_for_recheck(engine: Engine, now: datetime) -> list[int]:
    """Cases whose rectification deadline has passed and that nonsite has not rechecked since, oldest deadline first."""
    query = select(cases.c.id).where(waiting(now)).order_by(cases.c.deadline, cases.c.id)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _detect(detector_for: DetectorFor, target: Target, frames: Sequence[Frame]) -> list[list[Detection]]:
    """Every model the pack used, on every picture, pooled per picture (as the camera's pipeline pools them)."""
    pooled: list[list[Detection]] = [[] for _ in frames]
    for model in target.manifest.models:
        for slot, found in zip(pooled, detector_for(model.name).detect([f.image for f in frames])):
            slot.extend(found)
    return pooled


def _jpeg(frame: Frame) -> bytes:
    """The picture's bytes as received when it came as a JPEG (the fleet's snapshot), else encoded here."""
    if frame.encoded is not None and frame.encoded[:2] == b"\xff\xd8":
        return frame.encoded
    return encode_jpeg(frame.image, f"camera {frame.source_id}")


def encode_jpeg(image: np.ndarray, whose: str) -> bytes:
    """An after picture as stored with its proposal: JPEG at quality 90."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError(f"{whose}: its picture cannot be encoded as JPEG")
    return data.tobytes()


def _box(detection: Detection) -> dict:
    return {"class": detection.class_name, "confidence": round(detection.confidence, 4),
            "box": [round(v, 1) for v in detection.box], "model": detection.model}


def _lock_due(conn: Connection, case_id: int, now: datetime) -> None:
    """Hold the case's row until commit (a no-op update takes the lock, as ``audit.record`` does with its head),
    then check it still waits for its 核查 and, past its deadline, has no proposal yet: two desks running
    the rechecker propose once."""
    held = conn.execute(update(cases).where(and_(cases.c.id == case_id, cases.c.state == "rectification_due"))
                        .values(state=cases.c.state)).rowcount
    if held != 1:
        raise RecheckRefused(case_id, "not_due", "the case is not waiting for rectification")
    deadline = conn.execute(select(cases.c.deadline).where(cases.c.id == case_id)).scalar_one()
    if deadline is not None and deadline <= now and conn.execute(
            select(_proposed_since_deadline()).where(cases.c.id == case_id)).scalar():
        raise RecheckRefused(case_id, "already_proposed")


def recheck_case(engine: Engine, store: EvidenceStore, detector_for: DetectorFor, case_id: int, view: View,
                 now: datetime) -> RecheckResult:
    """Look at ``view`` for what the case's newest pack recorded, and store the proposal (see the module's doc).

    RecheckRefused: 'no_pack', 'flight_case' (a drone case: its view is a flight, not a camera),
    'wrong_camera' (the view is not of the pack's camera), 'empty_view', 'not_due' or 'already_proposed'."""
    target = case_target(engine, store, case_id)
    if target.flight:
        raise RecheckRefused(case_id, "flight_case")
    if view.camera != target.camera:
        raise RecheckRefused(case_id, "wrong_camera", f"view of {view.camera}, pack of {target.camera}")
    if not view.frames:
        raise RecheckRefused(case_id, "empty_view")
    decision = decide(target, view.frames, _detect(detector_for, target, view.frames))
    frame = view.frames[decision.after]
    proposal = Proposal("camera", decision, frame.captured_at, _jpeg(frame), tuple(target.zone(frame.image)),
                        {"camera": view.camera, "view": view.via})
    return store_proposal(engine, case_id, target, proposal, now)


@dataclass(frozen=True)
class Proposal:
    """What a recheck saw, ready to store: where it looked (``origin``, and ``facts`` for the audit entry), the decision,
    and the after picture (the decision's ``after``) with the zone in its pixels."""

    origin: Literal["camera", "flight"]
    decision: Decision
    taken_at: datetime  # when the after picture was taken
    jpeg: bytes
    zone: tuple[tuple[float, float], ...]
    facts: dict


def store_proposal(engine: Engine, case_id: int, target: Target, proposal: Proposal, now: datetime) -> RecheckResult:
    """The proposal as a ``case_rechecks`` row and its audit entry, in one transaction, if the case still waits for it.

    RecheckRefused: 'not_due' (the case has moved on) or 'already_proposed' (another recheck was first)."""
    decision, jpeg = proposal.decision, proposal.jpeg
    shown, looks, digest = decision.counted[decision.after], len(decision.counted), sha256_hex(jpeg)
    with engine.begin() as conn:
        _lock_due(conn, case_id, now)
        recheck_id = conn.execute(insert(case_rechecks).values(
            case_id=case_id, at=now, origin=proposal.origin, result=decision.result, detections=[_box(d) for d in shown], image=jpeg,
            sha256=digest, added_by=None,
        )).inserted_primary_key[0]
        record(conn, ACTOR, "case.recheck_proposed", f"case:{case_id}",
               {"recheck": recheck_id, "origin": proposal.origin, "result": decision.result, "sha256": digest, **proposal.facts,
                "before": target.before, "taken_at": proposal.taken_at.isoformat(), "looks": looks, "seen_in": decision.seen_in})
    return RecheckResult(case_id, recheck_id, now, proposal.origin, decision.result, looks, decision.seen_in, shown, proposal.zone,
                         target.before, jpeg, digest)
