"""The desk is in Simplified Chinese: every message of its pages, code and script has a zh_CN
translation, and no template shows English text that bypasses the catalog."""
from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir

from nonsite.review_ui.i18n import KEYWORDS, catalog

DESK = Path(__file__).parents[1] / "review_ui"
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python"), ("static/**.js", "javascript")]
# Words a page may show as they are: the product's name, key caps, units and format names.
AS_IS = {"nonsite", "Esc", "Enter", "CSV", "Excel", "GeoJSON", "JSON", "PDF", "SVG", "ID", "UTC", "fps", "px", "MB", "JPEG", "GPS"}


def desk_messages() -> dict[str, str]:
    found = {}
    for name, line, message, _comments, _context in extract_from_dir(DESK, method_map=METHODS, keywords=KEYWORDS):
        for text in message if isinstance(message, tuple) else (message,):
            if text:
                found.setdefault(text, f"{name}:{line}")
    return found


def test_every_message_of_the_desk_has_a_chinese_translation():
    messages = desk_messages()
    assert len(messages) > 150  # the pages, their errors and the script's flashes
    zh = catalog("zh_CN")
    missing = {text: where for text, where in messages.items() if text not in zh}
    assert not missing, f"{len(missing)} messages have no zh_CN translation: {missing}"
    for text, translated in zh.items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", translated)), f"placeholders differ: {text!r}"


def visible_english(template: str) -> list[str]:
    """Words in a template's text or shown attributes that are not inside ``{{ }}`` or ``{% %}``."""
    text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", template, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    shown = re.findall(r"""\b(?:alt|title|placeholder|aria-label)\s*=\s*"([^"]*)\"""", text)
    text = re.sub(r"<[^>]*>", " ", text) + " " + " ".join(shown)
    text = re.sub(r"&\w+;", " ", text)
    return [w for w in re.findall(r"[A-Za-z][A-Za-z'\-]+", text) if w not in AS_IS]


def test_no_template_shows_english_outside_the_catalog():
    leftovers = {path.name: words for path in sorted((DESK / "templates").glob("*.html")) if (words := visible_english(path.read_text()))}
    assert not leftovers, f"English text outside _(...) in templates: {leftovers}"
