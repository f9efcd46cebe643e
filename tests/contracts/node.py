"""Running the Node.js projects the tests use (installed by `make node-tools` from their package-lock.json): the
contract checks of tests/contracts and the example subscriber of contracts/examples/node."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from secondopinion_contracts.schemas import SCHEMA_DIR

NODE_PROJECT = Path(__file__).resolve().parent
SUBSCRIBER = Path(__file__).resolve().parents[2] / "contracts" / "examples" / "node" / "subscriber.mjs"


def node(project: Path = NODE_PROJECT) -> str:
    executable = shutil.which("node")
    if executable is None or not (project / "node_modules").is_dir():
        pytest.fail(f"Node.js and the packages of {project} are needed: run `make node-tools`")
    return executable


def run_node(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node(), str(NODE_PROJECT / script), *args], cwd=NODE_PROJECT, capture_output=True,
                          text=True, timeout=timeout, check=False)

Lines = list[dict[str, Any]]


@dataclass
class Subscriber:
    """The example subscriber running as a process, and the JSON lines it has printed so far."""

    process: asyncio.subprocess.Process
    state: Path
    lines: list[dict[str, Any]] = field(default_factory=list)

    async def read_until(self, done: Callable[[Lines], bool], timeout: float = 30.0) -> Lines:
        """Read lines until `done(lines)` holds (or the process ends); returns every line read."""
        stdout, stderr = self.process.stdout, self.process.stderr
        assert stdout is not None
        assert stderr is not None

        async def reading() -> None:
            while not done(self.lines):
                raw = await stdout.readline()
                if not raw:
                    raise AssertionError(f"the subscriber ended: {self.lines} {(await stderr.read()).decode()}")
                self.lines.append(json.loads(raw))

        await asyncio.wait_for(reading(), timeout)
        return self.lines

    def outcomes(self, *kinds: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["outcome"] in kinds]

    def saved(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state.read_text())
        return state


@asynccontextmanager
async def subscriber(url: str, state: Path, *args: str, queue: str = "pharmacy.secondopinion",
                     token: str = "") -> AsyncIterator[Subscriber]:
    project = SUBSCRIBER.parent
    process = await asyncio.create_subprocess_exec(
        node(project), str(SUBSCRIBER), "--url", url, "--queue", queue, "--schemas", str(SCHEMA_DIR),
        "--state", str(state), "--token", token, *args, cwd=project, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    running = Subscriber(process, state)
    try:
        yield running
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.terminate()
            with suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
