"""Numbered case documents (文书): 告知书, 责令限期整改通知书, 不予处罚决定书, 处罚决定书, as PDF.

A document is issued inside the transaction of the step that produces it: its number (文书编号) is
the next of its kind and year, taken under the row lock of ``document_numbers``, so numbers never
repeat, and a step that rolls back gives its number back (none is skipped). The PDF is rendered
from an editable HTML template (``documents/<kind>.<category>.html``, else ``documents/<kind>.html``,
looked up first in the bureau's own folder, ``NONSITE_DOCUMENT_TEMPLATES``) with the system's CJK
fonts, and stored with the case with its SHA-256. Each carries the case number, the party, the
place and times, the privacy copies of the key frames, and every evidence pack's id with its
manifest hash and a QR code of it. Documents are printed in Chinese whatever the desk's language:
they are served on the party.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import segno
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from nonsite.evidence import MANIFEST, EvidenceStore
from nonsite.evidence.audit import record
from nonsite.evidence.hashing import sha256_hex
from nonsite.evidence.outbox import emit
from nonsite.evidence.schema import case_documents, case_packs, cases, document_numbers, packs_table, shops

from .auth import User, case_rows
from .case_access import may_touch
from .i18n import Text
from .procedure import Procedure

BUILT_IN = Path(__file__).with_name("documents")
KEY_FRAME = "disclosure/threshold.jpg"  # faces and other plates blurred: the party gets this paper
CLOCK_SLACK = timedelta(minutes=5)  # a phone's clock a little ahead of the server's
DELIVERY_METHODS = ("in_person", "left_at_premises", "post", "electronic", "public_notice")  # 直接/留置/邮寄/电子/公告送达
TITLES = {"notice": "告知书", "rectification_order": "责令限期整改通知书", "no_penalty_decision": "不予行政处罚决定书",
          "penalty_decision": "行政处罚决定书"}


class DocumentError(ValueError):
    """A document that cannot be issued or delivered, with the reason."""


@dataclass(frozen=True)
class Issued:
    id: int
    number: str
    kind: str
    sha256: str


def next_number(conn: Connection, kind: str, year: int) -> int:
    """The next sequence number of ``kind`` in ``year``, inside the caller's transaction.

    The UPDATE takes the row's lock (SQLite: the database's write lock) until the caller commits,
    so a concurrent issuer waits and then counts on; the first of a year is inserted, and a
    concurrent first insert that loses the race retries as an update."""
    for _ in range(2):
        if conn.execute(update(document_numbers).where(document_numbers.c.kind == kind, document_numbers.c.year == year)
                        .values(last=document_numbers.c.last + 1)).rowcount == 1:
            return conn.execute(select(document_numbers.c.last).where(document_numbers.c.kind == kind,
                                                                       document_numbers.c.year == year)).scalar_one()
        try:
            with conn.begin_nested():
                conn.execute(insert(document_numbers).values(kind=kind, year=year, last=1))
            return 1
        except IntegrityError:
            continue
    raise DocumentError(f"could not number a {kind} document for {year}")


def _environment(folder: Path | None) -> Environment:
    loaders = [FileSystemLoader(str(folder))] if folder else []
    return Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(BUILT_IN))]), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _facts(conn: Connection, store: EvidenceStore, case_id: int) -> dict:
    """What every document prints: the case, the party, place, times and each pack with its manifest hash."""
    case = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().one()
    packs = conn.execute(select(packs_table).join(case_packs, case_packs.c.pack_id == packs_table.c.pack_id)
                         .where(case_packs.c.case_id == case_id).order_by(packs_table.c.threshold_at)).mappings().all()
    licence = next((p["shop_licence"] for p in packs if p["shop_licence"]), None)
    shop = conn.execute(select(shops).where(shops.c.licence == licence)).mappings().first() if licence else None
    plate = next((p["plate"] for p in packs if p["plate"]), None)
    evidence = []
    for p in packs:
        digest = sha256_hex(store.read(p["pack_id"], MANIFEST))
        files = set(store.list_files(p["pack_id"]))
        evidence.append({**dict(p), "manifest_sha256": digest,
                         "qr": segno.make(f"nonsite:pack:{p['pack_id']}:sha256:{digest}", error="m").svg_data_uri(scale=2),
                         "key_frame": _data_uri(store.read(p["pack_id"], KEY_FRAME), "image/jpeg") if KEY_FRAME in files else None})
    party = ({"kind": "shop", "name": shop["name"], "licence": shop["licence"], "address": shop["address"], "contact": shop["contact"]}
             if shop else {"kind": "shop", "name": packs[0]["shop_name"] or "", "licence": licence, "address": "", "contact": ""}
             if licence else {"kind": "vehicle", "plate": plate} if plate else {"kind": "site", "place": case["place"]})
    return {"case": dict(case), "party": party, "packs": evidence}


def issue(conn: Connection, store: EvidenceStore, procedure: Procedure, case_id: int, kind: str, user: User, zone: ZoneInfo,
          now: datetime, step: dict, templates: Path | None = None) -> Issued:
    """Number, render and store one document inside the step's transaction; audited and told to the outbox."""
    facts = _facts(conn, store, case_id)
    family = procedure.family_of(facts["case"]["category"])
    if family is None:
        raise DocumentError(f"the procedure has no family for category {facts['case']['category']}: no legal basis to print")
    year = now.astimezone(zone).year
    seq = next_number(conn, kind, year)
    number = f"{procedure.number_prefix}{procedure.document_codes[kind]}〔{year}〕{seq:04d}号"
    env = _environment(templates)
    template = env.select_template([f"{kind}.{facts['case']['category']}.html", f"{kind}.html"])
    html = template.render(**facts, number=number, title=TITLES[kind], bureau=procedure.bureau, family=family, step=step,
                           issued_on=now.astimezone(zone).strftime("%Y年%m月%d日"),
                           local=lambda t: t.astimezone(zone).strftime("%Y年%m月%d日 %H:%M") if t else "")
    import weasyprint  # noqa: PLC0415 - Pango loads on first use, not when the desk starts

    pdf = weasyprint.HTML(string=html, base_url=str(BUILT_IN)).write_pdf()
    digest = sha256_hex(pdf)
    document_id = conn.execute(insert(case_documents).values(
        case_id=case_id, kind=kind, year=year, seq=seq, number=number, sha256=digest, pdf=pdf, issued_by=user.id, issued_at=now,
    )).inserted_primary_key[0]
    record(conn, user.username, "document.issue", f"case:{case_id}", {"number": number, "kind": kind, "sha256": digest})
    emit(conn, "document.issued", f"case:{case_id}", {"case_id": case_id, "number": number, "kind": kind, "sha256": digest})
    return Issued(document_id, number, kind, digest)


def deliver(engine: Engine, case_id: int, document_id: int, method: str, recipient: str, at: datetime, user: User) -> None:
    """Record how, when and to whom a document of ``case_id`` was served (送达): once, by an officer of the case,
    at a time between its issue and now (service starts the party's time limits, so it is never back-dated past
    the paper itself)."""
    if method not in DELIVERY_METHODS:
        raise DocumentError(Text("delivery method must be one of {methods}", methods=", ".join(DELIVERY_METHODS)))
    if not recipient.strip():
        raise DocumentError(Text("delivery needs the recipient"))
    with engine.begin() as conn:
        may_touch(conn, case_id, user)
        row = conn.execute(select(case_documents.c.number, case_documents.c.issued_at)
                           .where(case_documents.c.id == document_id, case_documents.c.case_id == case_id)).first()
        if row is None:
            raise LookupError(Text("no document {document} in case {case}", document=document_id, case=case_id))
        if not row.issued_at <= at <= datetime.now(timezone.utc) + CLOCK_SLACK:
            raise DocumentError(Text("document {number} can be served only between its issue ({issued}) and now",
                                     number=row.number, issued=row.issued_at))
        if conn.execute(update(case_documents).where(case_documents.c.id == document_id, case_documents.c.delivered_at.is_(None))
                        .values(delivery_method=method, recipient=recipient.strip()[:128], delivered_at=at,
                                delivered_by=user.id)).rowcount != 1:
            raise DocumentError(Text("document {number} was already served", number=row.number))
        record(conn, user.username, "document.deliver", f"case:{case_id}",
               {"number": row.number, "method": method, "recipient": recipient.strip(), "at": at.isoformat()})


def documents_of(engine: Engine, case_id: int, with_pdf: bool = False) -> list[dict]:
    """A case's documents with who issued and who served each (the PDF itself only when asked for)."""
    return case_rows(engine, case_documents, case_id, "" if with_pdf else "pdf", issuer=case_documents.c.issued_by,
                     deliverer=case_documents.c.delivered_by)


def document_pdf(engine: Engine, case_id: int, document_id: int) -> tuple[str, bytes]:
    """A document's number and PDF, checked against the hash recorded when it was issued."""
    with engine.connect() as conn:
        row = conn.execute(select(case_documents.c.number, case_documents.c.pdf, case_documents.c.sha256)
                           .where(case_documents.c.id == document_id, case_documents.c.case_id == case_id)).first()
    if row is None:
        raise LookupError(f"no document {document_id} in case {case_id}")
    if sha256_hex(row.pdf) != row.sha256:
        raise DocumentError(f"document {row.number} does not match the hash recorded when it was issued")
    return row.number, row.pdf
