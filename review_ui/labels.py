"""The names officers read for the desk's coded values: categories, pack and case states, reasons, roles.

Codes stay English snake_case in the database, the API and the manifests (they are identifiers);
pages show ``label(code)`` translated, in the bureaus' own terms (违法停车, 待审核, 立案 ...).
"""
from __future__ import annotations

from .i18n import N_

# each family's colour on the map and in the charts
CATEGORY_COLOURS = {"illegal_parking": "#b3261e", "spillover_business": "#c77700", "street_vending": "#2e7d32",
                    "construction_activity": "#1d5fa8", "suspected_new_structure": "#6a3fb5"}

# each kind of change between two surveys, on the survey map
CHANGE_KIND_COLOURS = {"new_structure": "#6a3fb5", "rooftop_addition": "#c2185b", "coloured_steel_roof": "#0277bd",
                       "bare_soil": "#8d6e63", "vehicles_machinery": "#ef6c00", "other_change": "#546e7a"}

LABELS = {
    # violation families
    "illegal_parking": N_("illegal parking"),
    "spillover_business": N_("spill-over business"),
    "street_vending": N_("street vending"),
    "construction_activity": N_("illegal construction"),
    "suspected_new_structure": N_("suspected new structure"),
    # kinds of change between two surveys
    "new_structure": N_("new structure"),
    "rooftop_addition": N_("rooftop addition"),
    "coloured_steel_roof": N_("coloured-steel roof (彩钢瓦)"),
    "bare_soil": N_("bare soil / excavation"),
    "vehicles_machinery": N_("vehicles or machinery"),
    "other_change": N_("other change"),
    # a model's versions at this deployment (vision.model_store)
    "shipped": N_("as shipped"),
    "candidate": N_("candidate"),
    "promoted": N_("promoted"),
    "retired": N_("retired"),
    "rolled_back": N_("rolled back"),
    "shadow_started": N_("put in shadow"),
    "shadow_stopped": N_("shadow ended"),
    # a pack's review state
    "pending_review": N_("pending review"),
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    # a case's steps (立案 -> 告知 -> 整改 -> 核查 -> 结案), notices and outcomes
    "open": N_("case opened"),
    "notified": N_("notified"),
    "rectification_due": N_("rectification"),
    "rechecked": N_("rechecked"),
    "closed": N_("closed"),
    "warning": N_("warning"),
    "penalty": N_("penalty"),
    "rectified": N_("rectified"),
    "penalised": N_("penalised"),
    "dismissed": N_("not penalised"),
    # case documents (文书), how they are served (送达), and where a re-check looked
    "notice": N_("notice (告知书)"),
    "rectification_order": N_("rectification order (责令限期整改通知书)"),
    "no_penalty_decision": N_("decision not to penalise (不予处罚决定书)"),
    "penalty_decision": N_("penalty decision (处罚决定书)"),
    "in_person": N_("in person"),
    "left_at_premises": N_("left at the premises"),
    "post": N_("by post"),
    "electronic": N_("electronically"),
    "public_notice": N_("by public notice"),
    "camera": N_("camera"),
    "flight": N_("drone flight"),
    "field": N_("field visit"),
    "cleared": N_("cleared"),
    "still_present": N_("still present"),
    # reject reasons
    "false_detection": N_("false detection"),
    "permitted": N_("permitted activity"),
    "duplicate": N_("duplicate"),
    "not_enforceable": N_("not enforceable"),
    "other": N_("other (see note)"),
    # roles
    "reviewer": N_("reviewer"),
    "supervisor": N_("supervisor"),
    "admin": N_("admin"),
    # camera states
    "starting": N_("starting"),
    "live": N_("live"),
    "reconnecting": N_("reconnecting"),
    "failed": N_("failed"),
    "stopped": N_("stopped"),
}


def label(code: str | None) -> str:
    """The English label of a code (translate it where shown); an unknown code shows as itself."""
    if not code:
        return ""
    return LABELS.get(code, code)
