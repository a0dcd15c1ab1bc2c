"""The promotion gate: a candidate model replaces the current one only if it is no worse where it matters.

Per violation family of the deployment's own evaluation set, both models are compared at the
*operating recall*: the recall the current model reaches at its manifest's confidence floor, which is
what officers live with today. At that recall each model's precision (the share of what it raises
that officers would confirm) is read off its ranked detections, with a 95% Wilson interval on the
count. The candidate passes a family when it reaches the operating recall and its interval reaches
the current model's precision: worse beyond what chance on a small set explains is refused, a tie is
not. On the project's fixed benchmark folders its AP50 may not fall more than ``AP50_TOLERANCE``.
Every reason a candidate fails is listed, not only the first.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .evaluation import Scores

AP50_TOLERANCE = 0.02
Z95 = 1.96


@dataclass(frozen=True)
class OperatingPoint:
    recall: float
    precision: float
    low: float  # 95% Wilson interval of the precision
    high: float
    confirmed: int  # detections that match a confirmed box
    raised: int  # detections at or above the threshold
    threshold: float


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of a proportion that stays inside [0, 1] and is honest for small counts."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def at_recall(hits: Sequence[tuple[float, bool]], truths: int, recall: float) -> OperatingPoint | None:
    """The highest threshold at which the ranked detections reach ``recall``; None if they never do."""
    confirmed = raised = 0
    for confidence, hit in sorted(hits, key=lambda h: -h[0]):
        raised += 1
        confirmed += hit
        if truths and confirmed / truths >= recall - 1e-9:
            low, high = wilson(confirmed, raised)
            return OperatingPoint(round(confirmed / truths, 4), round(confirmed / raised, 4), round(low, 4), round(high, 4), confirmed,
                                  raised, round(confidence, 4))
    return None


def recall_at(hits: Sequence[tuple[float, bool]], truths: int, threshold: float) -> float:
    return sum(hit for confidence, hit in hits if confidence >= threshold) / truths if truths else 0.0


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    families: dict[str, dict] = field(default_factory=dict)  # family -> operating recall and both models' points
    fixed: dict[str, dict] = field(default_factory=dict)  # benchmark -> both models' AP50

    def as_dict(self) -> dict:
        return asdict(self)


def judge(site_current: dict[str, Scores], site_candidate: dict[str, Scores], current_conf: float,
          fixed_current: dict[str, Scores], fixed_candidate: dict[str, Scores]) -> GateResult:
    """The gate's decision, with the figures behind it, family by family and benchmark by benchmark."""
    result = GateResult(passed=True)
    if not site_current:
        result.passed = False
        result.reasons.append("the site evaluation set holds no decided pack of this model yet")
    for family, current in sorted(site_current.items()):
        candidate = site_candidate[family]
        operating = recall_at(current.hits, current.truths, current_conf)
        now, then = at_recall(current.hits, current.truths, operating), at_recall(candidate.hits, candidate.truths, operating)
        result.families[family] = {"operating_recall": round(operating, 4), "truths": current.truths,
                                   "current": asdict(now) if now else None, "candidate": asdict(then) if then else None}
        if current.truths == 0 or now is None:
            result.passed = False
            result.reasons.append(f"{family}: no confirmed object in the site set to measure against")
        elif then is None:
            result.passed = False
            result.reasons.append(f"{family}: the candidate never reaches the operating recall {operating:.2f}")
        elif then.high < now.precision:
            result.passed = False
            result.reasons.append(f"{family}: precision {then.precision:.3f} (95% {then.low:.3f}-{then.high:.3f}) at recall {operating:.2f} "
                                  f"is below the current model's {now.precision:.3f}")
    for name, current in sorted(fixed_current.items()):
        candidate = fixed_candidate[name]
        result.fixed[name] = {"current_ap50": round(current.ap50, 4), "candidate_ap50": round(candidate.ap50, 4), "images": current.images}
        if candidate.ap50 < current.ap50 - AP50_TOLERANCE:
            result.passed = False
            result.reasons.append(f"{name}: AP50 {candidate.ap50:.3f} against the current model's {current.ap50:.3f} "
                                  f"(more than {AP50_TOLERANCE} lower)")
    return result
