"""The desk speaks the officer's language and tells time in the bureau's zone.

Templates, code and app.js carry English messages; ``locale/<locale>/*.po`` hold the
translations, one file per area of the desk (merged when first needed), read with Babel. Simplified
Chinese is the default: the officers are in Chinese bureaus. English is chosen per officer, else
from the browser's Accept-Language.

Times are stored in UTC (``UtcDateTime``) and shown in one configured zone, default
Asia/Shanghai; every page names that zone once, in its header.
"""
from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from babel.messages.pofile import read_po
from pydantic import PlainSerializer

LOCALES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LOCALE = "zh_CN"
CATALOGS = Path(__file__).parent / "locale"
KEYWORDS = {"_": None, "N_": None, "Text": None, "t": None}  # what marks a message, in templates, code and app.js


def N_(message: str) -> str:
    """Marks a message defined here but translated where it is shown (a label in a table of labels)."""
    return message


class Text(str):
    """An English message and its values, shown translated wherever an officer reads it.

    It is a ``str`` (the English text, for logs and the JSON API's clients that read English), and
    keeps its template and values so a page or the desk's scripts can show it in the officer's
    language: ``raise HTTPException(404, Text("no case {case}", case=7))``. A value that is itself a
    Text (a role's name) is translated too, and a datetime is shown on the bureau's clock.
    """

    template: str
    values: dict

    def __new__(cls, template: str, **values) -> Text:
        made = super().__new__(cls, template.format(**values) if values else template)
        made.template, made.values = template, values
        return made


def message_of(exc: BaseException) -> str:
    """An exception's message, keeping a Text (``str(exc)`` would make it plain English)."""
    first = exc.args[0] if exc.args else ""
    return first if isinstance(first, Text) else str(exc)


@lru_cache(maxsize=None)
def catalog(locale: str) -> Mapping[str, str]:
    """Every translated message of ``locale``; fuzzy and empty entries count as untranslated."""
    found: dict[str, str] = {}
    for path in sorted((CATALOGS / locale).glob("*.po")):
        with path.open("rb") as file:
            for message in read_po(file, locale=locale):
                if message.id and message.string and not message.fuzzy and isinstance(message.id, str):
                    found[message.id] = message.string
    return found


def pick_locale(chosen: str | None, accept_language: str | None) -> str:
    """The officer's own choice, else the first language of the browser's list that the desk speaks."""
    if chosen in LOCALES:
        return chosen
    ranked = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, weight = part.strip().partition(";q=")
        try:
            q = float(weight) if weight else 1.0
        except ValueError:
            continue
        ranked.append((-q, n, tag.strip().lower()))
    for _q, _n, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LOCALE


# The zone the JSON API writes times in: the deployment's, set for each request by the app (app.py).
shown_zone: ContextVar[ZoneInfo] = ContextVar("shown_zone", default=ZoneInfo("Asia/Shanghai"))


def _in_shown_zone(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(shown_zone.get()).isoformat()


# A time in an API answer: ISO 8601 in the bureau's zone with its offset (2026-11-22T18:53:06+08:00), the same
# instant as the UTC the database keeps, written as the officers' clocks read it.
LocalTime = Annotated[datetime, PlainSerializer(_in_shown_zone, return_type=str, when_used="json")]


def zone_label(zone: ZoneInfo, at: datetime | None = None) -> str:
    """``Asia/Shanghai (UTC+08:00)``: the zone every time on the page is in."""
    offset = (at or datetime.now(timezone.utc)).astimezone(zone).strftime("%z")
    return f"{zone.key} (UTC{offset[:3]}:{offset[3:]})"


@dataclass(frozen=True)
class Desk:
    """One request's language and zone: what pages call ``_`` and ``when``."""

    locale: str
    zone: ZoneInfo

    def gettext(self, message: str, **values) -> str:
        if isinstance(message, Text):
            message, values = message.template, {**message.values, **values}
        translated = catalog(self.locale).get(message, message) if self.locale != "en" else message
        if not values:
            return translated
        return translated.format(**{k: self._shown(v) for k, v in values.items()})

    def _shown(self, value):
        """A message's value as the officer reads it: a Text translated, a time on the bureau's clock."""
        if isinstance(value, Text):
            return self.gettext(value)
        return self.when(value) if isinstance(value, datetime) else value

    def local(self, moment: datetime) -> datetime:
        """The moment on the bureau's clock; a naive value is taken as UTC (how the database keeps it)."""
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(self.zone)

    def when(self, moment: datetime | date | None, seconds: bool = True) -> str:
        """A time as the officer reads it: in the bureau's zone, ``2026-11-22 18:53:06``."""
        if moment is None:
            return "—"
        if not isinstance(moment, datetime):
            return moment.isoformat()
        return self.local(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    @property
    def zone_label(self) -> str:
        return zone_label(self.zone)

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.locale == "zh_CN" else "en"
