"""Hand-off to the city platform: the webhook it subscribes to (in the API schema), how far each receiver is,
and the courier that delivers while the desk serves."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from nonsite.evidence.courier import OutboxEvent, status

from . import routes_api
from .deps import Context, Session, context, role
from .i18n import LocalTime

router = APIRouter(prefix="/api", tags=["api"], responses=routes_api.router.responses)
webhooks = APIRouter()  # documentation only: what nonsite POSTs to a subscriber (the schema's "webhooks")


@asynccontextmanager
async def delivering(app: FastAPI):
    """The app's lifespan: its courier (``app.state.courier``, if any) delivers the outbox while the app serves,
    and stops with it (after the request in flight) on shutdown."""
    courier = app.state.courier
    if courier is not None:
        courier.start()
    try:
        yield
    finally:
        if courier is not None:
            await run_in_threadpool(courier.stop)


class ReceiverState(BaseModel):
    """One webhook receiver's deliveries: a receiver that is down is retried and shows here, never dropped."""

    model_config = ConfigDict(from_attributes=True)

    receiver: str = Field(description="The receiver's id in the webhooks file.")
    configured: bool = Field(description="False: no longer in the webhooks file; its undelivered events wait, kept.")
    url: str | None = Field(description="Where events are POSTed; null when not configured.")
    delivered: int = Field(description="Events the receiver acknowledged (2xx).")
    pending: int = Field(description="Events queued for it and not yet acknowledged.")
    not_queued: int = Field(description="Newer events it wants that no courier has queued yet (none running, or catching up).")
    oldest_pending_at: LocalTime | None = Field(description="When the oldest pending event happened.")
    oldest_pending_age_s: float | None = Field(description="How long ago, in seconds.")
    head_event_id: int | None = Field(description="The event being tried: later ones wait for it, so the receiver sees them in order.")
    head_attempts: int = Field(description="Tries of that event so far.")
    head_next_at: LocalTime | None = Field(description="When it is tried next (backoff doubles up to 10 minutes).")
    last_error: str | None = Field(description="Why its last try failed: unreachable, a timeout, or the receiver's HTTP status.")
    last_delivered_at: LocalTime | None = Field(description="The latest acknowledgement.")


@router.get("/outbox", response_model=list[ReceiverState])
def api_outbox(request: Request, _: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    """Webhook deliveries to the city platform, per receiver: delivered, pending, and the head of line's tries and last error."""
    courier = request.app.state.courier
    return [ReceiverState.model_validate(s) for s in status(ctx.engine, courier.receivers if courier else [])]


@webhooks.post("outbox-event", status_code=204, operation_id="outboxEvent", summary="An outbox event, POSTed to each subscribed receiver",
               response_description="Any 2xx acknowledges the event: it is not sent to this receiver again.", responses={
    "default": {"description": "Any other answer, or none within the receiver's timeout: the same event is sent again later "
                               "(backoff doubling from 1 s to 10 min), and no later event is sent before it."}})
def outbox_event(
    event: OutboxEvent,
    event_id: Annotated[int, Header(alias="X-Nonsite-Event-Id", description="The event's id, as in the body: de-duplicate on it "
                                    "(an event whose acknowledgement was lost is sent again).")],
    receiver: Annotated[str, Header(alias="X-Nonsite-Receiver", description="The receiver's id in nonsite's webhooks file.")],
    timestamp: Annotated[int, Header(alias="X-Nonsite-Timestamp", description="When it was sent, Unix seconds; part of the "
                                     "signature: refuse one too old (a replay).")],
    signature: Annotated[str, Header(alias="X-Nonsite-Signature", pattern="^sha256=[0-9a-f]{64}$", description=(
        "`sha256=` and the hex HMAC-SHA256, under the receiver's secret, of the X-Nonsite-Timestamp value, a full stop (.) and "
        "the raw body bytes. Check it (in constant time) before trusting the body."))],
) -> None:
    """nonsite POSTs each event of its outbox (a pack stored, a decision or its undoing, a case step, a document issued)
    as JSON to every receiver configured for its kind, in event-id order per receiver, until the receiver answers 2xx
    (any 2xx body is ignored). Receivers added later are sent the whole outbox from its first event."""
