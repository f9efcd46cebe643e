"""What tests read of a printed document, through poppler's tools as a reader would: its text (pdftotext), its
fonts (pdffonts) and a page as PNG (pdftoppm)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def _poppler(tool: str, *args: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: install poppler-utils (scripts/install-fonts.sh)"
    return subprocess.run([path, *args], check=True, capture_output=True, text=True).stdout  # noqa: S603


def _with_file(pdf: bytes, tool: str, *args: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "document.pdf"
        path.write_bytes(pdf)
        return _poppler(tool, *args, str(path), *(["-"] if tool == "pdftotext" else []))


def pdf_text(pdf: bytes) -> str:
    """The document's text in reading layout, with runs of spaces as one (so a label and its value compare)."""
    return " ".join(_with_file(pdf, "pdftotext", "-layout").split())


def missing_text(pdf: bytes, *expected: str) -> list[str]:
    """Which of the expected texts the document does not print (white space ignored: a line may wrap anywhere)."""
    printed = "".join(pdf_text(pdf).split())
    return [text for text in expected if "".join(text.split()) not in printed]


def unembedded_fonts(pdf: bytes) -> list[str]:
    """The fonts the document uses that are not embedded as a subset (empty: it prints the same anywhere)."""
    rows = _with_file(pdf, "pdffonts").splitlines()[2:]
    assert rows, "the document uses no font"
    return [row.split()[0] for row in rows if row.split()[-5:-3] != ["yes", "yes"]]


def save_page_png(pdf: bytes, target: Path, *, resolution: int = 80) -> Path:
    """The first page as PNG at `target` (docs/documents/ keeps one of each document)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "document.pdf"
        path.write_bytes(pdf)
        _poppler("pdftoppm", "-png", "-r", str(resolution), "-f", "1", "-l", "1", "-singlefile", str(path),
                 str(target.with_suffix("")))
    return target
