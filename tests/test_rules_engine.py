"""The officer's stories the rules engine must get right, on constructed tracks."""
from __future__ import annotations

import pytest

from nonsite.rules import RuleEngine, SiteConfig

from .helpers import at, car, frame

ZONE = [(100, 100), (400, 100), (400, 400), (100, 400)]


def site(**rule) -> SiteConfig:
    base = {"id": "no-parking", "kind": "illegal_parking", "zones": ["bus-lane"], "classes": ["car"], "dwell_s": 300,
            "hold_s": 0, "grace_s": 30, "cooldown_s": 0}
    base.update(rule)
    return SiteConfig.model_validate({
        "source": {"id": "cam-1", "kind": "folder", "uri": "."},
        "zones": [{"id": "bus-lane", "polygon": ZONE, "inertia": 3},
                  {"id": "shopfront", "polygon": ZONE, "inertia": 2, "shop": {"name": "Lao Wang Noodles"}}],
        "rules": [base],
    })


def play(engine: RuleEngine, start: str, seconds: int, boxes_at, step: int = 10):
    """Feed one frame every ``step`` seconds; ``boxes_at(t)`` gives the detections at second t."""
    out = []
    for seq, t in enumerate(range(0, seconds + 1, step)):
        out += engine.update(frame(seq, at(start, t)), boxes_at(t))
    return out + engine.flush()


def test_car_parked_six_minutes_in_bus_lane_at_ten_becomes_one_pack():
    violations = play(RuleEngine(site()), "10:00", 360, lambda t: [car(250, 300)])
    assert len(violations) == 1
    v = violations[0]
    assert v.category == "illegal_parking"
    assert v.first_seen.at == at("10:00")
    assert (v.threshold.at - v.first_seen.at).total_seconds() == 300
    assert v.last_seen.at >= v.threshold.at


def test_car_leaving_after_four_minutes_raises_nothing():
    violations = play(RuleEngine(site()), "10:00", 600, lambda t: [car(250, 300)] if t < 240 else [])
    assert violations == []


def test_car_outside_zone_never_counts():
    assert play(RuleEngine(site()), "10:00", 600, lambda t: [car(600, 300)]) == []


def test_moving_car_does_not_accumulate_dwell():
    # Creeps 40 px every 10 s through the zone: never still for five minutes.
    violations = play(RuleEngine(site(max_motion=0.3)), "10:00", 600, lambda t: [car(110 + (t // 10) * 5 % 280, 300)])
    assert violations == []


def test_inertia_ignores_a_one_frame_blip_into_the_zone():
    # A car outside the zone whose box jumps inside for a single frame.
    violations = play(RuleEngine(site(dwell_s=0)), "10:00", 100, lambda t: [car(250 if t == 50 else 600, 300)])
    assert violations == []


def test_id_switch_and_short_loss_keep_the_clock():
    # Track 1 vanishes at 150 s for 20 s, then the same car reappears as track 7.
    def boxes(t):
        if 150 <= t < 170:
            return []
        return [car(250, 300, track=1 if t < 150 else 7)]

    violations = play(RuleEngine(site()), "10:00", 360, boxes)
    assert len(violations) == 1
    assert violations[0].first_seen.at == at("10:00")


def test_loss_longer_than_grace_restarts_the_clock():
    def boxes(t):
        return [] if 100 <= t < 200 else [car(250, 300, track=1 if t < 100 else 2)]

    violations = play(RuleEngine(site(grace_s=30)), "10:00", 400, boxes)
    assert violations == []  # 0-100 s and 200-400 s are each shorter than five minutes


def test_one_violation_per_episode_and_a_new_one_after_coming_back():
    def boxes(t):
        if t < 400:
            return [car(250, 300, track=1)]
        if t < 500:
            return []
        return [car(250, 300, track=2)]

    violations = play(RuleEngine(site(grace_s=30)), "10:00", 900, boxes)
    assert len(violations) == 2


def test_cooldown_suppresses_the_same_place_coming_back():
    def boxes(t):
        return [] if 400 <= t < 500 else [car(250, 300, track=1 if t < 400 else 2)]

    violations = play(RuleEngine(site(grace_s=30, cooldown_s=3600)), "10:00", 900, boxes)
    assert len(violations) == 1


def test_no_parking_window_07_to_19_ignores_the_evening():
    rule = {"windows": ["07:00-19:00"]}
    assert play(RuleEngine(site(**rule)), "19:30", 600, lambda t: [car(250, 300)]) == []
    assert len(play(RuleEngine(site(**rule)), "18:00", 600, lambda t: [car(250, 300)])) == 1


def test_dwell_counts_only_from_when_the_window_opens():
    violations = play(RuleEngine(site(windows=["07:00-19:00"])), "06:58", 480, lambda t: [car(250, 300)])
    assert len(violations) == 1
    assert violations[0].first_seen.at == at("07:00")


def test_night_market_exception_allows_stalls_18_to_23():
    config = dict(kind="spillover_business", zones=["shopfront"], classes=["umbrella"], except_windows=["18:00-23:00"], dwell_s=60)
    stall = lambda t: [car(250, 300, cls="umbrella", track=None)]  # noqa: E731
    assert play(RuleEngine(site(**config)), "20:00", 300, stall) == []
    assert len(play(RuleEngine(site(**config)), "23:10", 300, stall)) == 1


def test_spillover_is_one_pack_per_shop_with_every_object():
    config = dict(kind="spillover_business", zones=["shopfront"], classes=["chair", "dining table"], dwell_s=60)
    goods = lambda t: [car(150, 300, track=1, cls="chair"), car(300, 300, track=2, cls="dining table"), car(350, 380, track=3, cls="chair")]  # noqa: E731
    violations = play(RuleEngine(site(**config)), "10:00", 300, goods)
    assert len(violations) == 1
    assert violations[0].zone.shop.name == "Lao Wang Noodles"
    assert len(violations[0].threshold.subject) == 3


def test_low_confidence_boxes_do_not_count():
    assert play(RuleEngine(site(min_confidence=0.5)), "10:00", 600, lambda t: [car(250, 300, conf=0.3)]) == []


def test_other_classes_do_not_count():
    assert play(RuleEngine(site()), "10:00", 600, lambda t: [car(250, 300, cls="person")]) == []


@pytest.mark.parametrize("moment,inside", [("06:59", False), ("07:00", True), ("18:59", True), ("19:00", False)])
def test_window_edges(moment, inside):
    from nonsite.rules import TimeWindow

    assert TimeWindow.model_validate("07:00-19:00").contains(at(moment)) is inside


def test_window_wrapping_midnight():
    from nonsite.rules import TimeWindow

    window = TimeWindow.model_validate("22:00-06:00")
    assert window.contains(at("23:30")) and window.contains(at("05:59")) and not window.contains(at("12:00"))


def test_only_an_answer_the_rules_judge_is_in_doubt_near_the_threshold():
    """Motion gating looks again while an answer sits at a threshold; only objects a rule judges count."""
    engine = RuleEngine(site(min_confidence=0.4))
    near = 0.41
    assert engine.in_doubt([car(250, 300, conf=near)], 0.03)  # in the zone, at the threshold
    assert not engine.in_doubt([car(250, 300, conf=0.8)], 0.03)  # in the zone, well above it
    assert not engine.in_doubt([car(600, 300, conf=near)], 0.03)  # across the street: no rule judges it
    assert not engine.in_doubt([car(250, 300, conf=near, cls="person")], 0.03)  # not a class of the rule
    engine.update(frame(0, at("10:00")), [car(390, 300)])  # a subject at the zone's edge...
    assert engine.in_doubt([car(420, 300, track=None, conf=near)], 0.03)  # ...that a box just outside continues
