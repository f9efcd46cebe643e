"""Running the Node.js tools of tests/contracts (installed by `make node-tools` from package-lock.json)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_PROJECT = Path(__file__).resolve().parent


def node() -> str:
    executable = shutil.which("node")
    if executable is None or not (NODE_PROJECT / "node_modules").is_dir():
        pytest.fail("Node.js and the tools of tests/contracts are needed: run `make node-tools`")
    return executable


def run_node(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node(), str(NODE_PROJECT / script), *args], cwd=NODE_PROJECT, capture_output=True,
                          text=True, timeout=timeout, check=False)
