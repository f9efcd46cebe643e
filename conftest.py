"""The suite's shared fixtures (eventkit.testing), and how `make test` splits it: most tests spread over two
workers (tests sharing a module's cluster of processes stay on one); then the browser tests (`browser`: each drives
Chromium against the four services, and on two cores they time out beside the rest); then the fault tests
(`alone`), which stop, kill or restart the machine's broker and database, by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["eventkit.testing"]

ROOT = Path(__file__).resolve().parent
ALONE = ("tests/faults/",)
GROUPS = {"tests/replicas/": "replicas"}  # a module-scoped cluster of service processes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.relative_to(ROOT).as_posix()
        if path.startswith(ALONE):
            item.add_marker(pytest.mark.alone)
        elif path.endswith("_browser.py"):
            item.add_marker(pytest.mark.browser)
        for folder, group in GROUPS.items():
            if path.startswith(folder):
                item.add_marker(pytest.mark.xdist_group(group))
