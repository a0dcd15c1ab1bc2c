"""The rechecker: a thread of ``nonsite serve`` that rechecks every case whose rectification deadline has passed.

Every ``period_s`` (the camera service's snapshot interval) it asks which cases are due, gathers
each one's camera view (``CameraViews``: it takes several passes to collect the service's
snapshots) and stores a proposal (``recheck.recheck_case``). A case it cannot recheck now (the
camera is down, its site file is gone, a drone case) is logged with the reason and left alone for
``retry_s``, so a dead camera is neither hammered nor logged every ten seconds.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import Engine

from nonsite.evidence import EvidenceStore

from .camera_view import CameraViews, NoCurrentView
from .deps import Context
from .recheck import DetectorFor, LoadedModels, RecheckRefused, RecheckResult, case_target, due_for_recheck, recheck_case

log = logging.getLogger("nonsite.recheck")


class Rechecker:
    def __init__(self, engine: Engine, store: EvidenceStore, detector_for: DetectorFor, views: CameraViews, period_s: float = 10.0,
                 retry_s: float = 900.0):
        self.engine, self.store, self.detector_for, self.views = engine, store, detector_for, views
        self.period_s, self.retry_s = period_s, retry_s
        self._resting: dict[int, datetime] = {}  # case -> when to try again after a failed try
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime) -> list[RecheckResult]:
        """One pass over the due cases: the proposals stored in it."""
        stored = []
        for case_id in due_for_recheck(self.engine, now):
            if self._stop.is_set():
                break
            if self._resting.get(case_id, now) > now:
                continue
            try:
                target = case_target(self.engine, self.store, case_id)
                if target.flight:  # the next flight over the site rechecks it (``flight_recheck``): nothing to say here
                    self._resting[case_id] = now + timedelta(seconds=self.retry_s)
                    continue
                view = self.views.current(target.camera, now)
                if view is not None:
                    stored.append(recheck_case(self.engine, self.store, self.detector_for, case_id, view, now))
                    self._resting.pop(case_id, None)
                    log.info("case %d: recheck proposes %s (%s)", case_id, stored[-1].result, target.camera)
            except (NoCurrentView, RecheckRefused) as exc:
                self._rest(case_id, now, str(exc))
            except Exception as exc:  # noqa: BLE001 - a model or store failure on one case must not stop the others
                log.exception("case %d: recheck failed", case_id)
                self._rest(case_id, now, f"{type(exc).__name__}: {exc}")
        return stored

    def _rest(self, case_id: int, now: datetime, why: str) -> None:
        self._resting[case_id] = now + timedelta(seconds=self.retry_s)
        log.warning("case %d: no recheck now, %s; next try in %.0f min", case_id, why, self.retry_s / 60)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.run_once(datetime.now(timezone.utc))
            except Exception:  # noqa: BLE001 - the database away for a moment: the next pass tries again
                log.exception("recheck pass failed")

    def start(self) -> "Rechecker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rechecker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the case in hand; a camera being opened is closed at once."""
        self._stop.set()
        self.views.close()
        if self._thread is not None:
            self._thread.join(timeout)


def rechecker_for(ctx: Context, registry) -> Rechecker:
    """The rechecker of a review desk: its database, store, sites and camera service folder; models from ``registry``."""
    return Rechecker(ctx.engine, ctx.store, LoadedModels(registry), CameraViews(ctx.sites_dir, ctx.fleet_dir))
