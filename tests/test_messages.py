"""Every refusal code the services give has its Japanese in eventkit's catalogue (Accept-Language: ja)."""

from __future__ import annotations

import re
from pathlib import Path

from eventkit.messages import REFUSALS_JA, STATE_PREFIXES_JA

SERVICES = Path(__file__).resolve().parent.parent / "services"
CODE = re.compile(r'code=(f?)"([a-z_]+)')


def test_every_refusal_code_in_the_services_reads_in_japanese() -> None:
    codes: set[str] = set()
    for source in SERVICES.glob("*/*/*.py"):
        if source.relative_to(SERVICES).parts[0] == "desk":
            continue  # the console answers no API: its own words are its catalogue (desk.catalogue)
        for formatted, code in CODE.findall(source.read_text(encoding="utf-8")):
            codes.add(code if not formatted else code + "*")
    assert len(codes) > 30, "the scan found the services' codes"
    prefixes = tuple(STATE_PREFIXES_JA)
    missing = sorted(code for code in codes
                     if code not in REFUSALS_JA and not (code.endswith("*") and code.startswith(prefixes)))
    assert missing == []
