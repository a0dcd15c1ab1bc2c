"""The JSON API's request and response bodies, so the OpenAPI schema says what every route takes and gives.

Responses are built from what the review functions return (index rows, SQL mappings, the pack
manifest), so each model names exactly the keys those carry and the UI (app.js) and the city
case system read. Bounds on requests keep nonsense a 422 before it reaches the database.
"""
from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from nonsite.evidence import PackManifest
from nonsite.ingest import CameraHealth, DetectorHealth, NodeHealth
from nonsite.ingest.config import Identifier
from nonsite.rules import ShopRecord, SiteConfig, ZoneSpec

from .auth import MAX_NAME, MAX_PASSWORD, MIN_PASSWORD, ROLES, check_password, clean_username
from .cases import NOTICE_KINDS, OUTCOMES, STATES
from .documents import DELIVERY_METHODS
from .i18n import LocalTime
from .review import REJECT_REASONS

# The workflow's own tuples, so the schema lists exactly the values the workflow accepts.
Role = Literal[ROLES]  # type: ignore[valid-type]
CaseState = Literal[STATES]  # type: ignore[valid-type]
RejectReason = Literal[REJECT_REASONS]  # type: ignore[valid-type]

# The queue widens a day by one either side in SQL, so the first and last days a date can hold
# would overflow; no evidence predates 2000 or will outlive 2100.
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31), description="A calendar day, YYYY-MM-DD.")]
_day = TypeAdapter(Day)


def parse_day(text: str) -> date | None:
    """The day a filter form sent, or None for an empty or unreadable one (pages ignore such a filter)."""
    try:
        return _day.validate_python(text) if text else None
    except ValidationError:
        return None


# --- errors -------------------------------------------------------------------------------------


class FieldError(BaseModel):
    """One rejected input, so a client can mark the form field at fault."""

    field: str = Field(description="Where the input was, e.g. 'query.limit' or 'body.polygon.0'.")
    message: str = Field(description="What is wrong with it.")


class ErrorBody(BaseModel):
    """Every JSON error, whatever its status: one string to show, and per-field details for invalid input."""

    detail: str = Field(description="A human-readable message, safe to show to the officer.")
    errors: list[FieldError] | None = Field(None, description="Only for invalid input (422 from validation): each rejected field.")

    @classmethod
    def of_validation(cls, problems: list[dict]) -> "ErrorBody":
        """Pydantic's error list, as fields and one sentence naming them all."""
        errors = [FieldError(field=".".join(str(part) for part in p["loc"]), message=p["msg"]) for p in problems]
        return cls(detail="invalid request: " + "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


# --- log-in -------------------------------------------------------------------------------------

# A user name as stored: trimmed, 1 to 64 characters of any script (王警官), no control characters.
UserName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, description="1 to 64 characters once trimmed; any script."),
                     AfterValidator(clean_username)]
# The name an officer is shown by: the same rules as a user name, or blank for none.
DisplayName = Annotated[str, Field(max_length=MAX_NAME * 2), AfterValidator(lambda v: clean_username(v) if v.strip() else "")]
# A new password: 10 to 256 characters.
NewPassword = Annotated[str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD), AfterValidator(check_password)]


class LoginBody(BaseModel):
    """Credentials; the lengths are the columns' (log-in attempts are recorded under the name)."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class LoginResult(BaseModel):
    """Who is logged in, and the CSRF token every state-changing request must send as X-CSRF-Token."""

    username: str
    role: Role
    csrf: str = Field(description="Send as the X-CSRF-Token header on every POST.")


class LogoutBody(BaseModel):
    """Optional: ``everywhere`` ends every session of the account (other browsers, a lost phone), not only this one."""

    everywhere: bool = False


class LogoutResult(BaseModel):
    """The session is gone and its cookie cleared."""

    ok: bool
    sessions_ended: int = Field(1, description="How many sessions ended: 1, or all of the account's with `everywhere`.")


class ShownNameBody(BaseModel):
    """The name an officer is shown by on pages and papers (王警官); blank: the user name."""

    display_name: DisplayName


class TeamBody(BaseModel):
    """The team or grid (网格) an officer works in; blank: none."""

    team: str = Field("", max_length=64)


class OwnPasswordBody(BaseModel):
    """An officer changes their own password: the current one is checked (and throttled like a log-in)."""

    current_password: str = Field(max_length=MAX_PASSWORD)
    new_password: NewPassword


# --- packs and decisions ------------------------------------------------------------------------


class PackSummary(BaseModel):
    """One row of the pack index: a queue entry, and a pack of a case."""

    model_config = ConfigDict(from_attributes=True)  # built from the index's PackRow

    pack_id: str
    category: str
    source_id: str
    rule_id: str
    zone_id: str
    shop_name: str | None
    subject_key: str = Field(description="Who or what the pack is about; confirmed packs of one subject share a case.")
    first_seen: LocalTime
    threshold_at: LocalTime = Field(description="When the dwell threshold was crossed; the queue is newest first by it.")
    last_seen: LocalTime
    dwell_s: float
    confidence: float
    manifest_sha256: str = Field(description="SHA-256 of the manifest as stored; the pack is verified against it.")
    status: str = Field(description="pending_review, confirmed or rejected.")
    indexed_at: LocalTime
    purged: str | None = Field(None, description="None, 'images' (rejected, after the retention time) or 'all' (case expired).")
    places: list[tuple[float, float]] | None = Field(None, description="Subjects' [lon, lat]; None for packs indexed before 0002.")
    places_approximate: bool | None = None
    plate: str | None = Field(None, description="The number plate read on the vehicle, if any.")
    shop_licence: str | None = Field(None, description="The shop's licence number, if its zone names one.")
    model: str | None = Field(None, description="The detector(s) that saw it.")


class DecisionRecord(BaseModel):
    """The one decision taken on a pack, and by whom."""

    pack_id: str
    decision: Literal["confirm", "reject"]
    reason: str | None
    note: str | None
    user_id: int
    at: LocalTime
    username: str


class PackDetail(BaseModel):
    """Everything the detail view shows; the integrity check is redone on every view."""

    row: PackSummary
    manifest: PackManifest = Field(description="The pack's signed manifest, as stored.")
    verified: bool = Field(description="Every file matches its recorded hash and the manifest the index recorded.")
    problems: list[str] = Field(description="What failed verification, if anything.")
    checked: int = Field(description="How many files were hashed.")
    decision: DecisionRecord | None


class DecisionBody(BaseModel):
    """An officer's confirm or reject; a rejection says why, and 'other' needs a note."""

    decision: Literal["confirm", "reject"]
    reason: RejectReason | None = Field(None, description="Required for a rejection.")
    note: str = Field("", max_length=4000)


class CorrectionBody(BaseModel):
    """An officer's box (x1, y1, x2, y2 in the threshold frame's pixels) and class for one subject of the pack."""

    subject: int = Field(0, ge=0, le=63, description="Index of the subject in the threshold key frame.")
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels of the threshold frame.")
    class_name: str = Field(min_length=1, max_length=64, description="What the object is (car, truck, umbrella, ...).")

    model_config = ConfigDict(allow_inf_nan=False)


class CorrectionResult(BaseModel):
    pack_id: str
    subject: int
    box: tuple[float, float, float, float]
    class_name: str


class DecisionResult(BaseModel):
    """The pack's new status; a confirmation joins or opens a case."""

    pack_id: str
    status: Literal["confirmed", "rejected"]
    case_id: int | None = Field(description="The case the confirmed pack joined; None for a rejection.")


class UndoResult(BaseModel):
    """The decision is taken back: the pack waits for review again."""

    pack_id: str
    status: Literal["pending_review"]


# --- cases --------------------------------------------------------------------------------------


class CaseSummary(BaseModel):
    """A case as listed: its subject, where it stands in the workflow and who has it."""

    id: int
    subject_key: str
    category: str
    source_id: str
    place: str = Field(description="Shop name or zone id.")
    state: CaseState
    notice_kind: str | None
    deadline: LocalTime | None = Field(description="Rectification deadline, once the case is rectification_due.")
    outcome: str | None
    assignee_id: int | None
    created_at: LocalTime
    updated_at: LocalTime
    assignee: str | None = Field(description="The assignee's user name.")
    team: str | None = Field(None, description="The team or grid (网格) the case is dispatched to.")
    due_at: LocalTime | None = Field(None, description="When the current step is due (办结时限), from the procedure.")
    overdue: bool = Field(False, description="Open and past its step's due time.")
    awaiting_approval: bool = Field(False, description="A step waits for a supervisor's approval (审批).")


class CaseEvent(BaseModel):
    """One step of a case, with the officer's note and what the step recorded."""

    id: int
    case_id: int
    at: LocalTime
    user_id: int
    from_state: CaseState | None
    to_state: CaseState
    note: str
    details: dict[str, Any] = Field(description="notice_kind, deadline, recheck or outcome, as the step set them.")
    username: str


class Party(BaseModel):
    """Who the case is against, as repeat offences are counted."""

    kind: Literal["licence", "plate", "site", "unidentified"] = Field(
        description="A shop by licence, a vehicle by plate, a watched site or shop without a licence by its subject; "
        "'unidentified': a vehicle whose plate was not read, to be identified by hand.")
    value: str | None


class EarlierCase(BaseModel):
    """An earlier case against the same party inside the look-back period, not closed as not penalised."""

    id: int
    state: CaseState
    outcome: str | None
    created_at: LocalTime
    place: str


class Move(BaseModel):
    """A step the procedure allows from the case's state, for the officer asking."""

    to_state: CaseState
    when: dict[str, str] = Field(description="What the form must say for this move (notice_kind, outcome).")
    role: str = Field(description="The least role that may take it.")
    approval: bool = Field(description="It waits for a supervisor's approval before it is taken.")
    issues: str | None = Field(description="The numbered document it issues.")


class Approval(BaseModel):
    """A step asked for and a supervisor's decision on it."""

    id: int
    step: dict[str, Any] = Field(description="The step asked for: to_state and the form's fields.")
    requester: str
    requested_at: LocalTime
    decider: str | None
    decided_at: LocalTime | None
    approved: bool | None = Field(description="None while waiting.")
    opinion: str


class CaseDocument(BaseModel):
    """A numbered document (文书) issued in the case, and its delivery (送达)."""

    id: int
    kind: str
    number: str = Field(description="文书编号, unique per kind and year.")
    sha256: str = Field(description="SHA-256 of the PDF as issued.")
    issued_at: LocalTime
    issuer: str
    delivery_method: str | None
    delivered_at: LocalTime | None
    recipient: str | None


class Recheck(BaseModel):
    """核查 material: an automatic look at the camera or flight (a proposal until an officer confirms it), or a field photo."""

    id: int
    at: LocalTime
    origin: Literal["camera", "flight", "field"]
    result: Literal["cleared", "still_present"] | None = Field(description="What an automatic recheck proposes; None for a field photo.")
    detections: list[Any] = Field(description="What the detector found in the zone on the current view.")
    sha256: str = Field(description="SHA-256 of the picture, also in the audit log.")
    adder: str | None = Field(description="Who added a field photo; None: nonsite itself.")
    confirmer: str | None
    confirmed_at: LocalTime | None


class CaseDetail(BaseModel):
    """A case with its history and evidence, and the steps it may take next."""

    case: CaseSummary
    events: list[CaseEvent]
    packs: list[PackSummary]
    party: Party
    earlier_cases: list[EarlierCase] = Field(description="What makes this a repeat offence; empty: a first offence (首违不罚).")
    prior_confirmed: int = Field(description="How many earlier cases: 0 is a first offence.")
    lookback_days: int = Field(description="How far back earlier cases count.")
    next: list[CaseState] = Field(description="States the case may go to now, for the officer asking.")
    moves: list[Move] = Field(description="The procedure's moves from here that the officer asking may take or ask for.")
    approvals: list[Approval]
    pending_approval: Approval | None = Field(description="The step waiting for approval; no other step until it is decided.")
    documents: list[CaseDocument]
    rechecks: list[Recheck] = Field(description="Automatic recheck proposals and field photos.")


class TransitionBody(BaseModel):
    """One workflow step; which extra fields a step needs is checked by the workflow, which names what is missing."""

    to_state: CaseState
    note: str = Field("", max_length=4000)
    notice_kind: Literal[NOTICE_KINDS] | None = Field(None, description="Going to notified.")  # type: ignore[valid-type]
    deadline: Day | None = Field(None, description="Going to rectification_due.")
    recheck: Literal["clear", "not_clear"] | None = Field(None, description="Going to rechecked.")
    outcome: Literal[OUTCOMES] | None = Field(None, description="Going to closed.")  # type: ignore[valid-type]


class AssignBody(BaseModel):
    """Dispatch a case to an officer, a team or grid (网格), or both (supervisors only)."""

    username: str | None = Field(None, max_length=64)
    team: str | None = Field(None, max_length=64, description="An empty string takes the case off its team.")


class ApprovalBody(BaseModel):
    """A supervisor's 审批 of a step asked for."""

    approve: bool
    opinion: str = Field("", max_length=4000, description="Required when sending the step back.")


class DeliveryBody(BaseModel):
    """How, when and to whom a document was served (送达)."""

    method: Literal[DELIVERY_METHODS]  # type: ignore[valid-type]
    recipient: str = Field(min_length=1, max_length=128)
    at: datetime | None = Field(None, description="When it was served; default now. A time without an offset is the bureau's.")


# --- supervision --------------------------------------------------------------------------------


class ConfirmRate(BaseModel):
    """Field precision: of the decided packs, the share officers confirmed."""

    confirmed: int
    rejected: int
    rate: float


class OverdueCase(BaseModel):
    """An open case past its step's due time (办结时限)."""

    id: int
    place: str
    state: CaseState
    due_at: LocalTime
    team: str | None


class Dashboard(BaseModel):
    """Supervisor figures: volumes, confirm rates per rule and per source, and the open-case backlog."""

    total: int = Field(description="Packs in the period.")
    by_category: dict[str, int]
    by_source: dict[str, int]
    by_street: dict[str, int] = Field(description="Packs per street (街道): the shop register's, else the camera's.")
    by_grid: dict[str, int] = Field(description="Packs per grid (网格).")
    by_shop: dict[str, int]
    by_day: dict[str, int] = Field(description="Packs per day of their threshold time on the bureau's clock, oldest first.")
    trend: dict[str, dict[str, int]] = Field(description="Packs per period (day, week or month) and category.")
    by_officer: dict[str, dict[str, int]] = Field(description="Decisions per officer: confirmed and rejected.")
    by_status: dict[str, int]
    confirm_rate: dict[Literal["rule", "source"], dict[str, ConfirmRate]]
    open_cases_by_state: dict[str, int]
    overdue: list[OverdueCase] = Field(description="Open cases past their step's due time, most overdue first.")
    overdue_by_team: dict[str, int] = Field(description="Overdue cases per team or grid (网格); '' for cases on no team.")


class AuditEntry(BaseModel):
    """One link of the hash-chained audit log."""

    id: int
    at: LocalTime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str = Field(description="The previous entry's hash: editing or removing a row breaks the chain.")
    hash: str


# --- the camera service -------------------------------------------------------------------------


class CameraReport(CameraHealth):
    """One camera as the camera service last reported it, with what the cameras page works out from it."""

    state_text: str = Field(description="The state as the page says it, times on the bureau's clock, e.g. "
                                        "'reconnecting since 14:03:22 (connection refused)' or 'failed: HTTP 404 Not Found'.")
    last_frame_age_seconds: float | None = Field(description="Seconds from the newest frame to this answer; null before the first.")
    snapshot: str | None = Field(description="URL of the camera's latest picture; null when the service has written none.")
    snapshot_at: LocalTime | None = Field(description="When that picture was written.")


class KnownCamera(BaseModel):
    """A camera as the desk knows it: a camera whose site file was removed, or that ran on another machine, still has its packs
    to answer for."""

    camera: str
    known_from: list[Literal["index", "fleet", "sites"]] = Field(description=(
        "index: it has packs; fleet: the camera service reports it; sites: a site file names it."))
    packs: int = Field(0, description="Its packs in the index.")
    last_pack: LocalTime | None = Field(None, description="When its newest pack crossed its rule's threshold.")
    state: str | None = Field(None, description="The camera service's state for it; null: no status from the camera service.")


class CamerasReport(BaseModel):
    """What the camera service (`nonsite fleet`) last wrote about itself, and whether it still writes."""

    fleet: Literal["running", "stale", "none", "unreadable"] = Field(description=(
        "running: the status is fresh. stale: the service stopped writing it (stopped, died or hangs), the figures are "
        "from written_at. none: no camera service has run here. unreadable: a status file exists but cannot be read."))
    written_at: LocalTime | None = Field(description="When the status was last written.")
    problem: str | None = Field(None, description="Why the status cannot be read (only when unreadable).")
    started_at: LocalTime | None = Field(None, description="When the camera service started.")
    cameras: list[CameraReport] = Field(default_factory=list)
    detector: DetectorHealth | None = Field(None, description="The model shared by the cameras: batches, dropped frames, time.")
    nodes: list[NodeHealth] = Field(default_factory=list, description=(
        "On a Ray cluster: every node, its state, resources, models, cameras, evidence queue and spooled packs. Empty on one machine."))
    known: list[KnownCamera] = Field(default_factory=list, description=(
        "Every camera the desk knows, merged by id: from its packs in the index, the camera service's status or a site file."))


# --- administration -----------------------------------------------------------------------------


class SourceInfo(BaseModel):
    """A camera's config file, parsed, or the reason it does not parse."""

    source_id: str
    file: str = Field(description="The YAML file's name in the sites folder.")
    error: str = Field(description="Why the file does not load; empty when it does.")
    config: SiteConfig | None


# Finite: the zone is written to YAML, the audit log and a JSON reply, none of which holds NaN or infinity.
Pixel = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]


class ZoneBody(BaseModel):
    """A zone drawn over a camera frame, bound to one of the camera's rules."""

    zone_id: Annotated[Identifier, BeforeValidator(lambda v: unicodedata.normalize("NFC", v).strip() if isinstance(v, str) else v)] \
        = Field(description="Letters of any script (解放路-1), digits, '.', '-' and '_'; trimmed.")
    polygon: list[tuple[Pixel, Pixel]] = Field(min_length=3, max_length=200, description="Corner points [x, y] in pixels.")
    rule_id: str = Field(max_length=128)
    shop: ShopRecord | None = Field(None, description="Whose frontage the zone is; spill-over rules need one.")
    version: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the camera's file as the editor loaded it.")


class ZoneSaveResult(BaseModel):
    """The camera's zones as now saved, and the file's new version."""

    source_id: str
    zones: list[ZoneSpec]
    version: str


class UserBody(BaseModel):
    """A new officer's account."""

    username: UserName
    password: NewPassword
    role: Role
    display_name: DisplayName | None = Field(None, description="The name pages and papers show (王警官); default the user name.")


class UserInfo(BaseModel):
    """An officer's account, without its password."""

    id: int
    username: str
    display_name: str | None = None
    role: Role
    active: bool = Field(True, description="A disabled account cannot log in and has no sessions.")
    team: str | None = Field(None, description="The team or grid (网格) the officer works in.")
    sessions: int = Field(0, description="Live sessions (neither expired nor idle).")


class UserRoleBody(BaseModel):
    """A new role; the account's sessions end, so the next log-in gets the new powers."""

    role: Role


class UserActiveBody(BaseModel):
    """Enable or disable an account; disabling ends its sessions."""

    active: bool


class UserPasswordBody(BaseModel):
    """An administrator sets an officer's password (a forgotten one); the account's sessions end."""

    password: NewPassword


class AccountChange(BaseModel):
    """The account as it now stands, and how many of its sessions the change ended."""

    user: UserInfo
    sessions_ended: int


# Path parameters shared by the API and the pages: out-of-range ids are a 404/422, never a 500.
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A case number.")]
PackId = Annotated[str, Path(max_length=64, description="A pack id.")]
SourceId = Annotated[str, Path(max_length=128, description="A camera's source id.")]
