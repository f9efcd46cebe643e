"""The printed documents the desk hands over or posts (appointment slip, report letter, receipt): one A4 page
layout in Japanese with an English line under each heading, the hospital's identity from configuration, a
Japanese TrueType font embedded as a subset, and the same bytes for the same facts.

Each service turns its own facts into `Block`s (scheduling.slip, reporting.letter, billing.receipt_pdf);
`render` makes the PDF, `issued_pdf` records its SHA-256 and answers it over HTTP.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import asyncpg
from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from eventkit.business_calendar import RECEPTION_CLOSES, RECEPTION_OPENS
from eventkit.clock import TOKYO
from eventkit.db import Conn

# Debian's fonts-ipaexfont-gothic (scripts/install-fonts.sh installs it).
DEFAULT_FONT_PATH = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"
FONT_NAME = "DocumentGothic"
PDF_MEDIA_TYPE = "application/pdf"
WEEKDAYS_JA = "月火水木金土日"

# Placeholders for development only: production must be given the hospital's own identity.
DEVELOPMENT_HOSPITAL_NAME = "セカンドオピニオン大学病院（開発用）"
DEVELOPMENT_HOSPITAL_ADDRESS = "東京都千代田区（開発用の住所）"
DEVELOPMENT_DESK_PHONE = "000-0000-0000"

# The departments' Japanese names for print (codes as in events; an unknown code prints as itself).
DEPARTMENT_NAMES_JA = {
    "cardiology": "循環器内科", "cardiovascular_surgery": "心臓血管外科", "gastroenterology": "消化器内科",
    "gastrointestinal_surgery": "消化器外科", "hepatology": "肝臓内科", "nephrology": "腎臓内科",
    "hematology": "血液内科", "neurology": "脳神経内科", "neurosurgery": "脳神経外科", "oncology": "腫瘍内科",
    "radiation_oncology": "放射線治療科", "pediatrics": "小児科", "dermatology": "皮膚科",
    "rheumatology": "リウマチ・膠原病内科", "infectious_diseases": "感染症内科", "otolaryngology": "耳鼻咽喉科",
    "transplant_surgery": "移植外科", "plastic_surgery": "形成外科", "endocrinology": "内分泌・糖尿病内科",
    "respiratory_medicine": "呼吸器内科", "urology": "泌尿器科", "obstetrics_gynecology": "産婦人科",
}
MODE_NAMES_JA = {"in_person": "対面", "online": "オンライン"}


class FontMissing(RuntimeError):
    """The document font is not where configuration says: documents cannot be printed."""


class HospitalSettings(BaseSettings):
    """Who issues the documents: the hospital, its second-opinion desk, and the physicians' printed names."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    profile: str = Field("development", validation_alias="APP_PROFILE")
    name: str = Field(DEVELOPMENT_HOSPITAL_NAME, validation_alias="HOSPITAL_NAME", min_length=1, max_length=60)
    desk: str = Field("地域医療連携センター（セカンドオピニオン担当）", validation_alias="HOSPITAL_DESK",
                      min_length=1, max_length=60)
    postal_code: str = Field("000-0000", validation_alias="HOSPITAL_POSTAL_CODE", pattern=r"^[0-9]{3}-[0-9]{4}$")
    address: str = Field(DEVELOPMENT_HOSPITAL_ADDRESS, validation_alias="HOSPITAL_ADDRESS", min_length=1,
                         max_length=120)
    desk_phone: str = Field(DEVELOPMENT_DESK_PHONE, validation_alias="HOSPITAL_DESK_PHONE",
                            pattern=r"^[0-9+\-() ]{3,30}$")
    # JSON object: staff id -> the name printed for that physician (a staff id prints as itself otherwise).
    physicians: dict[str, str] = Field(default_factory=dict, validation_alias="HOSPITAL_PHYSICIANS")
    font_path: str = Field(DEFAULT_FONT_PATH, validation_alias="DOCUMENT_FONT_PATH")
    # The in-person fee printed on the appointment slip, tax included: keep it equal to billing's fee schedule.
    in_person_fee_yen: int = Field(33_000, validation_alias="HOSPITAL_IN_PERSON_FEE_YEN", gt=0)

    @model_validator(mode="after")
    def _production_is_configured(self) -> HospitalSettings:
        placeholders = (self.name == DEVELOPMENT_HOSPITAL_NAME, self.address == DEVELOPMENT_HOSPITAL_ADDRESS,
                        self.desk_phone == DEVELOPMENT_DESK_PHONE)
        if self.profile == "production" and any(placeholders):
            raise ValueError("HOSPITAL_NAME, HOSPITAL_ADDRESS and HOSPITAL_DESK_PHONE must be set in production")
        return self

    @field_validator("font_path")
    @classmethod
    def _font_is_there(cls, path: str) -> str:
        # Refused at start-up rather than on the first print: a service that cannot print says so at once.
        if not Path(path).is_file():
            raise ValueError(_font_missing(path))
        return path

    def physician_name(self, staff_id: str) -> str:
        return self.physicians.get(staff_id, staff_id)

    @property
    def reception_hours(self) -> str:
        return (f"月曜～金曜日（土・日・祝日・年末年始を除く）{RECEPTION_OPENS:%-H:%M}～{RECEPTION_CLOSES:%-H:%M}")

    @property
    def issuer_lines(self) -> list[str]:
        return [self.name, self.desk, f"〒{self.postal_code} {self.address}", f"TEL {self.desk_phone}"]


def _font_missing(path: str) -> str:
    return (f"the document font {path} is missing: install fonts-ipaexfont-gothic (scripts/install-fonts.sh) "
            "or set DOCUMENT_FONT_PATH to a Japanese TrueType font")


@cache
def _register_font(path: str) -> str:
    """The font's name for ReportLab, one per font file (so two configurations never swap fonts)."""
    if not Path(path).is_file():
        raise FontMissing(_font_missing(path))
    name = f"{FONT_NAME}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    pdfmetrics.registerFont(TTFont(name, path))
    return name


# --- what a document is made of -------------------------------------------------------------------------

@dataclass(frozen=True)
class Heading:
    japanese: str
    english: str


@dataclass(frozen=True)
class Fields:
    """Label / value rows; a label may carry its English name after a newline."""

    rows: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Lines:
    lines: Sequence[str]
    boxed: bool = False
    right: bool = False


@dataclass(frozen=True)
class Grid:
    """A table with a header row; the columns listed in `right` are aligned right (amounts)."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    widths: Sequence[float]
    right: Sequence[int] = ()
    bold_last_row: bool = False


Block = Heading | Fields | Lines | Grid


@dataclass(frozen=True)
class Document:
    title: str
    title_english: str
    # The file's /Title and /Subject: no personal data (they show in a viewer's window title).
    reference: str
    issued_on: date
    blocks: Sequence[Block]
    addressee: Sequence[str] = ()
    stamp: str | None = None
    stamp_note: str | None = None
    numbers: Sequence[tuple[str, str]] = field(default_factory=tuple)


# --- formatting ----------------------------------------------------------------------------------------

def ja_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS_JA[day.weekday()]}）"


def ja_time_range(start: datetime, end: datetime) -> str:
    local_start, local_end = start.astimezone(TOKYO), end.astimezone(TOKYO)
    return f"{ja_date(local_start.date())} {local_start:%H:%M}～{local_end:%H:%M}"


def yen(amount: int) -> str:
    return f"{amount:,}円"


def department_ja(code: str) -> str:
    return DEPARTMENT_NAMES_JA.get(code, code)


# --- rendering -----------------------------------------------------------------------------------------

def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=9.5, leading=13, wordWrap="CJK")
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=11, textColor=colors.HexColor("#444444")),
        "title": ParagraphStyle("title", parent=base, fontSize=18, leading=24, alignment=TA_CENTER),
        "title_en": ParagraphStyle("title_en", parent=base, fontSize=9, leading=12, alignment=TA_CENTER,
                                   textColor=colors.HexColor("#555555")),
        "heading": ParagraphStyle("heading", parent=base, fontSize=11.5, leading=15),
        "heading_en": ParagraphStyle("heading_en", parent=base, fontSize=8, leading=10,
                                     textColor=colors.HexColor("#555555")),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "stamp": ParagraphStyle("stamp", parent=base, fontSize=14, leading=18, alignment=TA_CENTER,
                                textColor=colors.HexColor("#b00000")),
        "addressee": ParagraphStyle("addressee", parent=base, fontSize=11, leading=17),
        "issuer": ParagraphStyle("issuer", parent=base, fontSize=8.5, leading=11.5, alignment=TA_RIGHT),
    }


def _table_style(styles: dict[str, ParagraphStyle], commands: list[tuple[Any, ...]]) -> TableStyle:
    # Every cell in the embedded font: a table's own default (Helvetica) would be referenced, not embedded.
    return TableStyle([("FONTNAME", (0, 0), (-1, -1), styles["base"].fontName), *commands])


def _text(value: str) -> str:
    return escape(value).replace("\n", "<br/>")


def _heading(block: Heading, styles: dict[str, ParagraphStyle]) -> Flowable:
    line = Table([[Paragraph(_text(block.japanese), styles["heading"])],
                  [Paragraph(_text(block.english), styles["heading_en"])]], colWidths=[170 * mm])
    line.setStyle(_table_style(styles, [("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
                              ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1),
                              ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return KeepTogether([Spacer(1, 1.5 * mm), line, Spacer(1, 1 * mm)])


def _label(label: str, styles: dict[str, ParagraphStyle]) -> Paragraph:
    japanese, _, english = label.partition("\n")
    text = _text(japanese) + (f" <font size=6.5 color='#555555'>{_text(english)}</font>" if english else "")
    return Paragraph(text, styles["base"])


def _fields(block: Fields, styles: dict[str, ParagraphStyle]) -> Flowable:
    rows = [[_label(label, styles), Paragraph(_text(value), styles["base"])] for label, value in block.rows]
    table = Table(rows, colWidths=[42 * mm, 128 * mm])
    table.setStyle(_table_style(styles, [("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
                               ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f0f0")),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 2),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    return table


def _lines(block: Lines, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    style = styles["right"] if block.right else styles["base"]
    paragraphs = [Paragraph(_text(line), style) for line in block.lines]
    if not block.boxed:
        return list(paragraphs)  # free paragraphs: a long text (an opinion) flows on to the next page
    table = Table([[paragraph] for paragraph in paragraphs], colWidths=[170 * mm])
    table.setStyle(_table_style(styles, [("LEFTPADDING", (0, 0), (-1, -1), 4), ("TOPPADDING", (0, 0), (-1, -1), 1),
                                 ("BOTTOMPADDING", (0, 0), (-1, -1), 1), ("BOX", (0, 0), (-1, -1), 0.8, colors.black)]))
    return [table]


def _grid(block: Grid, styles: dict[str, ParagraphStyle]) -> Flowable:
    def cell(value: str, column: int) -> Paragraph:
        return Paragraph(_text(value), styles["right"] if column in block.right else styles["base"])

    rows = [[cell(value, column) for column, value in enumerate(row)] for row in [block.header, *block.rows]]
    table = Table(rows, colWidths=[width * mm for width in block.widths])
    commands: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f0f0")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    if block.bold_last_row:
        commands.append(("LINEABOVE", (0, -1), (-1, -1), 1.2, colors.black))
    table.setStyle(_table_style(styles, commands))
    return table


def _top(document: Document, hospital: HospitalSettings, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """Addressee on the left (for a window envelope); the date, numbers and the issuing hospital on the right;
    any stamp (再発行, a replacement) above the title."""
    left = [Paragraph(_text(line), styles["addressee"]) for line in document.addressee]
    right: list[Flowable] = [Paragraph(_text(f"発行日 {ja_date(document.issued_on)}"), styles["right"])]
    right += [Paragraph(_text(f"{label} {value}"), styles["right"]) for label, value in document.numbers]
    right += [Spacer(1, 3 * mm)]
    right += [Paragraph(_text(line), styles["issuer"]) for line in hospital.issuer_lines]
    top = Table([[left or "", right]], colWidths=[90 * mm, 80 * mm])
    top.setStyle(_table_style(styles, [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    story: list[Flowable] = [top, Spacer(1, 3 * mm)]
    if document.stamp:
        note = Paragraph(_text(document.stamp_note or ""), ParagraphStyle("note", parent=styles["small"],
                                                                          alignment=TA_RIGHT))
        stamp = Table([[note, Paragraph(_text(document.stamp), styles["stamp"])]], colWidths=[128 * mm, 42 * mm])
        stamp.setStyle(_table_style(styles, [("BOX", (1, 0), (1, 0), 1.5, colors.HexColor("#b00000")),
                                     ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        story.append(stamp)
    return [*story, Spacer(1, 2 * mm), Paragraph(_text(document.title), styles["title"]),
            Paragraph(_text(document.title_english), styles["title_en"]), Spacer(1, 3 * mm)]


def render(document: Document, hospital: HospitalSettings) -> bytes:
    """The document as PDF bytes: the same document and hospital give the same bytes (no creation date or
    random file id: ReportLab's invariant mode)."""
    font = _register_font(hospital.font_path)
    styles = _styles(font)
    buffer = io.BytesIO()
    # The frame pads its content by 6 pt: margins of 20 mm less that put text and 170 mm tables flush.
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=20 * mm - 6, rightMargin=20 * mm - 6, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=document.reference, subject=document.title_english,
                            author=hospital.name, creator="second-opinion desk", invariant=1,
                            initialFontName=font, initialFontSize=10)
    renderers = {Heading: _heading, Fields: _fields, Lines: _lines, Grid: _grid}
    story = _top(document, hospital, styles)
    for block in document.blocks:
        made = renderers[type(block)](block, styles)  # type: ignore[operator]
        story += made if isinstance(made, list) else [made]
        story.append(Spacer(1, 2 * mm))

    def page_footer(canvas: Canvas, template: SimpleDocTemplate) -> None:
        canvas.setFont(font, 7.5)
        canvas.drawCentredString(A4[0] / 2, 10 * mm, f"{document.title}　{template.page}ページ")

    pdf.build(story, onFirstPage=page_footer, onLaterPages=page_footer)
    return buffer.getvalue()


# --- issuing over HTTP ---------------------------------------------------------------------------------

DocumentKind = Literal["appointment_slip", "opinion_report", "receipt", "refund"]


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def record_issued(conn: Conn, kind: DocumentKind, reference: str, content: bytes) -> tuple[str, bool]:
    """Keep the document's SHA-256 (table issued_documents) so a reprint can be checked against the first print;
    returns the digest and whether this exact document was printed before."""
    digest = sha256_of(content)
    copies: int = await conn.fetchval(
        """INSERT INTO issued_documents (kind, reference, sha256) VALUES ($1, $2, $3)
           ON CONFLICT (kind, reference, sha256) DO UPDATE SET copies = issued_documents.copies + 1,
                                                               last_printed_at = now()
           RETURNING copies""", kind, reference, digest)
    return digest, copies > 1


async def printed_before(conn: Conn, kind: DocumentKind, reference: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM issued_documents WHERE kind = $1 AND reference = $2)", kind, reference))


async def issued_pdf(pool: asyncpg.Pool, kind: DocumentKind, reference: str, content: bytes,
                     filename: str) -> Response:
    """Record the printed document's digest and answer it."""
    async with pool.acquire() as conn:
        digest, _ = await record_issued(conn, kind, reference, content)
    return pdf_response(content, filename, digest)


async def issued_pdf_marking_copies(pool: asyncpg.Pool, kind: DocumentKind, reference: str,
                                    make: Callable[[bool], bytes], filename: str) -> Response:
    """A document whose first print is the original and every later one a copy (`make(copy)`), e.g. a receipt
    printed again is marked 再発行. One print at a time per document decides which it is."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{kind}:{reference}")
        copy = await printed_before(conn, kind, reference)
        content = await run_in_threadpool(make, copy)
        digest, _ = await record_issued(conn, kind, reference, content)
    return pdf_response(content, filename, digest)


def pdf_response(content: bytes, filename: str, digest: str) -> Response:
    """Inline, so the browser's viewer prints it; the file name is made of ids only (no personal data)."""
    return Response(content, media_type=PDF_MEDIA_TYPE, headers={
        "Content-Disposition": f'inline; filename="{filename}"', "X-Document-SHA256": digest,
        "Cache-Control": "no-store"})
