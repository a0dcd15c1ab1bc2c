"""A deployment's own versions of a model: what it learnt from its officers, which version runs, and why.

Version 0 is the model as nonsite ships it (the manifest's weights). ``nonsite learn`` adds each
fine-tuned candidate as the next version with its evaluation report; the promotion gate decides
whether it becomes current or stays a rejected candidate. Promotion and rollback change one pointer,
so the registry serves the promoted weights to every camera and flight at their next start, and
the previous weights stay on disk for a rollback. Everything is one JSON file per model, replaced
whole on each change, with the history of every promotion, rejection and rollback in it.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nonsite.ingest.files import replace_file

from .weights import weights_sha256

SHIPPED = 0


class ModelStoreError(ValueError):
    """A promotion or rollback that cannot be done; the message says why."""


@dataclass
class ModelVersion:
    version: int
    weights: str  # relative to the model's folder; "" for the shipped version (the manifest's weights)
    sha256: str
    status: str  # shipped, candidate, promoted, rejected, retired
    created_at: str
    report: dict = field(default_factory=dict)  # the gate's figures and decision


@dataclass
class ModelEvent:
    action: str  # promoted, rejected, rolled_back
    version: int
    at: str
    by: str
    reason: str = ""


@dataclass
class ModelLineState:
    current: int = SHIPPED
    versions: list[ModelVersion] = field(default_factory=list)
    history: list[ModelEvent] = field(default_factory=list)
    shadow: int | None = None  # the version running beside the current one on live cameras, raising nothing


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ModelLine:
    """One model's versions at this deployment, kept under ``root/<name>/``."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.folder = Path(root) / name
        self.path = self.folder / "versions.json"

    @property
    def shadow_folder(self) -> Path:
        """Where a version in shadow keeps its disagreements with the current one (``vision.shadow_book``)."""
        return self.folder / "shadow"

    def state(self) -> ModelLineState:
        if not self.path.is_file():
            return ModelLineState()
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        return ModelLineState(raw["current"], [ModelVersion(**v) for v in raw["versions"]], [ModelEvent(**e) for e in raw["history"]],
                              raw.get("shadow"))

    def _save(self, state: ModelLineState) -> None:
        replace_file(self.path, json.dumps(asdict(state), indent=1, ensure_ascii=False).encode())

    def _with_shipped(self, state: ModelLineState, shipped_sha256: str) -> ModelLineState:
        if not state.versions:
            state.versions.append(ModelVersion(SHIPPED, "", shipped_sha256, "shipped", _now()))
        return state

    def current_weights(self) -> Path | None:
        """The promoted weights, or None while the shipped version runs."""
        state = self.state()
        return self.weights_of(self.version(state, state.current)) if state.current != SHIPPED else None

    def weights_of(self, version: ModelVersion) -> Path | None:
        """A version's weight file; None for the shipped version (the manifest's weights)."""
        return self.folder / version.weights if version.weights else None

    @staticmethod
    def version(state: ModelLineState, number: int) -> ModelVersion:
        found = next((v for v in state.versions if v.version == number), None)
        if found is None:
            raise ModelStoreError(f"no version {number} (versions: {', '.join(str(v.version) for v in state.versions) or 'none'})")
        return found

    def add_candidate(self, weights: Path, shipped_sha256: str, report: dict) -> ModelVersion:
        """Copy a trained checkpoint in as the next version; its status follows the gate's decision in ``report``."""
        state = self._with_shipped(self.state(), shipped_sha256)
        number = max(v.version for v in state.versions) + 1
        target = self.folder / f"v{number}" / "weights.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights, target)
        passed = report.get("gate", {}).get("passed", False)
        version = ModelVersion(number, str(target.relative_to(self.folder)), weights_sha256(target), "candidate" if passed else "rejected",
                               _now(), report)
        state.versions.append(version)
        if not passed:
            state.history.append(ModelEvent("rejected", number, _now(), "gate", "; ".join(report.get("gate", {}).get("reasons", []))))
        self._save(state)
        return version

    def promote(self, number: int, by: str, reason: str = "") -> ModelVersion:
        """Make a candidate current; a rejected one only with a reason (a supervisor overriding the gate)."""
        state = self.state()
        version = self.version(state, number)
        if version.status == "rejected" and not reason.strip():
            raise ModelStoreError(f"version {number} was rejected by the promotion gate ({version.report.get('gate', {}).get('reasons')}); "
                                  "promoting it needs a stated reason")
        if number == state.current:
            raise ModelStoreError(f"version {number} is already current")
        self.version(state, state.current).status = "retired" if state.current != SHIPPED else "shipped"
        version.status = "promoted"
        state.current = number
        state.history.append(ModelEvent("promoted", number, _now(), by, reason))
        self._end_shadow_of_current(state, by)
        self._save(state)
        return version

    def start_shadow(self, number: int, by: str) -> ModelVersion:
        """Run version ``number`` beside the current one on live cameras (any version but the current: a
        supervisor may want to see live how a refused candidate would have done)."""
        state = self.state()
        version = self.version(state, number)
        if number == state.current:
            raise ModelStoreError(f"version {number} is current: a shadow runs a version beside the current one")
        state.shadow = number
        state.history.append(ModelEvent("shadow_started", number, _now(), by))
        self._save(state)
        return version

    @staticmethod
    def _end_shadow_of_current(state: ModelLineState, by: str) -> None:
        """A version that became current no longer runs in its own shadow."""
        if state.shadow == state.current:
            state.shadow = None
            state.history.append(ModelEvent("shadow_stopped", state.current, _now(), by, "became current"))

    def stop_shadow(self, by: str) -> int:
        state = self.state()
        if state.shadow is None:
            raise ModelStoreError("no version runs in shadow")
        number, state.shadow = state.shadow, None
        state.history.append(ModelEvent("shadow_stopped", number, _now(), by))
        self._save(state)
        return number

    def rollback(self, by: str, reason: str = "") -> ModelVersion:
        """Back to the version that was current before the last promotion still in force."""
        state = self.state()
        stack = [SHIPPED]  # the versions in force, replayed from the history: a promotion pushes, a rollback pops
        for event in state.history:
            if event.action == "promoted":
                stack.append(event.version)
            elif event.action == "rolled_back":
                stack.pop()
        if len(stack) < 2:
            raise ModelStoreError("the shipped version is current: nothing to roll back")
        earlier = stack[-2]
        self.version(state, state.current).status = "retired"
        target = self.version(state, earlier)
        target.status = "promoted" if earlier != SHIPPED else "shipped"
        state.current = earlier
        state.history.append(ModelEvent("rolled_back", earlier, _now(), by, reason))
        self._end_shadow_of_current(state, by)
        self._save(state)
        return target
