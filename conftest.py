"""The suite's shared fixtures (eventkit.testing), and how `make test` splits it: the fault tests, which stop, kill
or restart the machine's broker and database, are marked `alone` and run after the rest, by themselves. The rest
spread over two workers; tests sharing a module's cluster of processes stay on one worker, and the browser tests
(each drives Chromium against the four services) share one too."""

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
            item.add_marker(pytest.mark.xdist_group("browser"))
        for folder, group in GROUPS.items():
            if path.startswith(folder):
                item.add_marker(pytest.mark.xdist_group(group))
