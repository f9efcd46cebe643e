"""The suite runs every test where it is written. Several test packages are named `tests` (one per service, one
here); imported under that short name, a later one's modules resolved to an earlier one's, and scheduling's and
reporting's test_api.py and test_domain.py ran intake's tests instead of their own, unnoticed, until pytest was
told to import test packages under their full path (pyproject.toml: consider_namespace_packages, pythonpath)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_collected_test_is_defined_in_the_file_it_is_reported_from() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    node_ids = [line for line in collected.stdout.splitlines() if "::" in line]
    on_disk = {str(path.relative_to(ROOT)) for folder in ("tests", "services", "contracts")
               for path in (ROOT / folder).rglob("test_*.py") if ".venv" not in path.parts}
    assert {node_id.split("::")[0] for node_id in node_ids} == on_disk
    elsewhere = []
    for node_id in node_ids:
        path, *_, name = node_id.split("::")
        function = name.split("[")[0]
        source = (ROOT / path).read_text(encoding="utf-8")
        if not re.search(rf"^\s*(async\s+)?def {re.escape(function)}\(", source, re.MULTILINE):
            elsewhere.append(node_id)
    assert not elsewhere, f"{len(elsewhere)} tests reported from a file that does not define them: {elsewhere[:5]}"
