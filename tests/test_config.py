"""A wrong site config is refused with the file, the line and the field at fault."""
from __future__ import annotations

import pytest

from nonsite.rules import ConfigError, SiteConfig, load_config

GOOD = """\
source:
  id: cam-1
  kind: folder
  uri: frames/
zones:
  - id: bus-lane
    polygon: [[0, 0], [100, 0], [100, 100]]
  - id: noodle-shop
    polygon: [[0, 0], [100, 0], [100, 100]]
    shop: {name: Lao Wang Noodles, licence: 91310000MA1FL0000X}
rules:
  - id: no-parking
    kind: illegal_parking
    zones: [bus-lane]
    classes: [car]
    windows: ["07:00-19:00"]
  - id: spill-over
    kind: spillover_business
    zones: [noodle-shop]
    classes: [chair]
"""


def write(tmp_path, text):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads(tmp_path):
    config = load_config(write(tmp_path, GOOD), SiteConfig)
    assert config.zone("noodle-shop").shop.name == "Lao Wang Noodles"
    assert config.rules[0].windows[0].span == "07:00-19:00"


@pytest.mark.parametrize(
    "bad,good,line,field",
    [
        ("    kind: illegal_parking", "    kind: illegal_parkin", 13, "rules.0.kind"),
        ('    windows: ["07:00-19:00"]', '    windows: ["7am-7pm"]', 16, "rules.0.windows.0"),
        ("    polygon: [[0, 0], [100, 0], [100, 100]]\n  - id: noodle", "    polygon: [[0, 0], [100, 0]]\n  - id: noodle", 7, "zones.0.polygon"),
        ("  kind: folder", "  kind: camera", 3, "source.kind"),
        ("    classes: [car]", "    classes: [car]\n    dwel_s: 60", 16, "rules.0.dwel_s"),
    ],
)
def test_errors_point_at_the_bad_line(tmp_path, bad, good, line, field):
    assert bad in GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(bad, good, 1)), SiteConfig)
    message = str(caught.value)
    assert f"site.yaml:{line}: {field}" in message, message


def test_spillover_zone_without_a_shop_is_refused(tmp_path):
    text = GOOD.replace("    shop: {name: Lao Wang Noodles, licence: 91310000MA1FL0000X}\n", "")
    with pytest.raises(ConfigError, match="names no shop"):
        load_config(write(tmp_path, text), SiteConfig)


def test_rule_on_unknown_zone_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown zone 'bus-lan'"):
        load_config(write(tmp_path, GOOD.replace("zones: [bus-lane]", "zones: [bus-lan]")), SiteConfig)


def test_broken_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"site.yaml:\d+: not valid YAML"):
        load_config(write(tmp_path, GOOD.replace("  id: cam-1", "  id: [cam-1")), SiteConfig)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml", SiteConfig)
