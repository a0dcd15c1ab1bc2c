"""The bureau's case procedure as configuration: steps, who takes them, approvals, documents, deadlines.

One typed YAML file (``procedure.yaml`` beside this module, or the bureau's own through
``NONSITE_PROCEDURE_FILE``) says which moves between case states exist, the least role for each,
which wait for a supervisor's approval (审批), which numbered document each issues, and how many
days each state may last (办结时限) per violation family. ``cases.transition`` enforces it; pages
offer only what it allows. A file that does not check out is refused at start with every problem.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nonsite.rules import ConfigError, load_config

State = Literal["open", "notified", "rectification_due", "rechecked", "closed"]
Role = Literal["reviewer", "supervisor", "admin"]
DocumentKind = Literal["notice", "rectification_order", "no_penalty_decision", "penalty_decision"]
FORM_FIELDS = {"notice_kind": ("warning", "penalty"), "outcome": ("rectified", "penalised", "dismissed"), "recheck": ("clear", "not_clear")}
DEFAULT_FILE = Path(__file__).with_name("procedure.yaml")


class ProcedureError(ConfigError):
    """A procedure file that cannot be used, with every problem in it."""


class StepRule(BaseModel):
    """One allowed move of a case, narrowed by what the form says (``when``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    from_state: State = Field(alias="from")
    to: State
    when: dict[str, str] = Field(default_factory=dict)
    role: Role = "reviewer"
    approval: bool = False
    issues: DocumentKind | None = None

    @model_validator(mode="after")
    def _known_fields(self) -> StepRule:
        for name, value in self.when.items():
            if value not in FORM_FIELDS.get(name, ()):
                raise ValueError(f"when: {name}={value} is not a form field and value nonsite knows ({FORM_FIELDS})")
        return self

    def matches(self, state: str, to: str, form: dict[str, str | None]) -> bool:
        return self.from_state == state and self.to == to and all(form.get(k) == v for k, v in self.when.items())


class Family(BaseModel):
    """What differs between violation families: the law printed on their papers and how long each step may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    categories: list[str]
    violated: str
    penalty: str
    due_days: dict[State, int] = Field(default_factory=dict)
    rectification_days: int = Field(default=3, ge=0)
    auto_close_first_offence: bool = False


class Procedure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bureau: str
    number_prefix: str
    document_codes: dict[DocumentKind, str]
    four_eyes: bool = True  # a supervisor never approves a step they asked for
    steps: list[StepRule]
    families: dict[str, Family]

    @model_validator(mode="after")
    def _consistent(self) -> Procedure:
        problems = [f"steps: document {s.issues} has no code in document_codes" for s in self.steps
                    if s.issues and s.issues not in self.document_codes]
        seen: dict[tuple, int] = {}
        for n, s in enumerate(self.steps):
            key = (s.from_state, s.to, tuple(sorted(s.when.items())))
            if key in seen:
                problems.append(f"steps[{n}]: the same move as steps[{seen[key]}]")
            seen[key] = n
        categories = [c for f in self.families.values() for c in f.categories]
        problems += [f"families: category {c} is in more than one family" for c in sorted({c for c in categories if categories.count(c) > 1})]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rule_for(self, state: str, to: str, form: dict[str, str | None]) -> StepRule | None:
        """The most specific rule for this move, or None when the procedure has no such move."""
        found = [s for s in self.steps if s.matches(state, to, form)]
        return max(found, key=lambda s: len(s.when)) if found else None

    def moves_from(self, state: str) -> list[StepRule]:
        return [s for s in self.steps if s.from_state == state]

    def family_of(self, category: str) -> Family | None:
        return next((f for f in self.families.values() if category in f.categories), None)

    def due_at(self, category: str, state: str, now: datetime) -> datetime | None:
        """When a case entering ``state`` is overdue; None where the family sets no limit (or the case is closed)."""
        family = self.family_of(category)
        days = family.due_days.get(state) if family else None
        return None if days is None or state == "closed" else now + timedelta(days=days)


def load_procedure(path: Path | None = None) -> Procedure:
    """The procedure in ``path`` (default: nonsite's own), checked; ProcedureError names each line at fault."""
    try:
        return load_config(path or DEFAULT_FILE, Procedure)
    except ConfigError as exc:
        raise ProcedureError(f"case procedure: {exc}") from exc


@lru_cache(maxsize=1)
def default_procedure() -> Procedure:
    return load_procedure()
