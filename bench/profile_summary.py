"""Summarize a py-spy raw (collapsed-stack) profile: where the samples went, by function.

    py-spy record -r 200 -f raw -o out.raw -- .venv/bin/python -m bench.consumers 3000 scheduling
    uv run python -m bench.profile_summary out.raw [--under consume] [--top 25]

`self` is the share of samples whose innermost frame is the function, `total` the share in which it is
anywhere on the stack; `--under TEXT` keeps only stacks passing through a frame containing TEXT.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path


def _frames(stack: str) -> list[str]:
    frames = []
    for frame in stack.split(";"):
        # "function (path/to/file.py:123)" -> "function (file.py)"; line numbers would split one function.
        name, _, location = frame.partition(" (")
        file = location.rsplit(":", 1)[0].rstrip(")")
        short = "/".join(file.split("/")[-2:]) if file else ""
        frames.append(f"{name} ({short})" if short else name)
    return frames


def _package(frame: str) -> str:
    """"Connection.execute (asyncpg/connection.py)" -> "asyncpg"; a frame without a file counts as itself."""
    _, _, location = frame.partition(" (")
    return location.rstrip(")").split("/")[0] if location else frame


# Where a sample's time went, by its innermost frame (and, for socket sends, whose socket): first rule that matches.
CATEGORIES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("socket send to PostgreSQL", lambda leaf, stack: "SocketTransport.write" in leaf and "asyncpg" in stack),
    ("socket send to RabbitMQ",
     lambda leaf, stack: "SocketTransport.write" in leaf and ("aiormq" in stack or "aio_pika" in stack)),
    ("socket send, other (HTTP)", lambda leaf, stack: "SocketTransport.write" in leaf),
    ("thread-pool hop (a sync function run in a worker thread: FastStream's message injection, FastAPI's sync "
     "dependencies)",
     lambda leaf, stack: "run_in_threadpool" in stack or "threading.py" in leaf or "to_thread" in stack),
    ("idle in select", lambda leaf, stack: "Selector.select" in leaf),
    ("asyncpg (protocol, pool)", lambda leaf, stack: "(asyncpg/" in leaf),
    ("pydantic (validation, serialization)", lambda leaf, stack: "(pydantic" in leaf),
    ("OpenTelemetry (spans)", lambda leaf, stack: "(trace/" in leaf or "opentelemetry" in leaf or "(context/" in leaf),
    ("AMQP client (aiormq, pamqp, aio-pika)",
     lambda leaf, stack: any(f"({name}/" in leaf for name in ("aiormq", "pamqp", "aio_pika"))),
    ("FastStream, fast_depends, anyio", lambda leaf, stack: any(
        f"({name}/" in leaf for name in ("faststream", "fast_depends", "subscriber", "_internal", "anyio", "_backends",
                                          "middlewares", "core"))),
    ("HTTP stack (uvicorn, starlette, fastapi, h11)", lambda leaf, stack: any(
        f"({name}/" in leaf for name in ("uvicorn", "starlette", "fastapi", "h11", "http", "protocols", "middleware"))),
    ("JSON, uuid", lambda leaf, stack: any(name in leaf for name in ("(json/", "(uuid.py"))),
    ("jpholiday (the business calendar, filled at start-up)", lambda leaf, stack: "(jpholiday/" in leaf),
    ("the benchmark itself (CPU meter, polling)", lambda leaf, stack: "(bench/" in leaf),
    ("asyncio event loop", lambda leaf, stack: "(asyncio/" in leaf),
    ("service and eventkit code", lambda leaf, stack: any(
        f"({name}/" in leaf for name in ("eventkit", "intake", "scheduling", "billing", "reporting",
                                          "secondopinion_contracts"))),
)


def _samples(path: Path) -> Iterator[tuple[str, int]]:
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack, int(count_text)


# A thread inside a socket send is often not computing but descheduled: the send woke the PostgreSQL backend
# (or broker) it writes to, and on two cores the scheduler ran that first. py-spy counts such a thread as
# active, so these categories are left out of the "computing" view.
NOT_COMPUTING = ("socket send to PostgreSQL", "socket send to RabbitMQ", "socket send, other (HTTP)", "idle in select")


def breakdown(path: Path, computing_only: bool = False) -> dict[str, float]:
    """Share of samples (percent) per category of CATEGORIES, "other" for the rest; largest first.
    `computing_only`: shares of the samples outside NOT_COMPUTING."""
    counts: Counter[str] = Counter()
    for stack, count in _samples(path):
        leaf = stack.rsplit(";", 1)[-1]
        counts[next((name for name, matches in CATEGORIES if matches(leaf, stack)), "other")] += count
    if computing_only:
        for name in NOT_COMPUTING:
            counts.pop(name, None)
    total = sum(counts.values())
    return {name: round(100 * n / total, 1) for name, n in counts.most_common()} if total else {}


def summarize(path: Path, under: str | None, top: int) -> str:
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for stack, count in _samples(path):
        frames = _frames(stack)
        if under and not any(under in frame for frame in frames):
            continue
        total += count
        own[frames[-1]] += count
        by_package[_package(frames[-1])] += count
        for frame in set(frames):
            anywhere[frame] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples" + (f" under '{under}'" if under else "")]
    if not under:
        lines += ["", "share%  where the time went"]
        lines += [f"{share:6.1f}  {name}" for name, share in breakdown(path).items()]
        lines += ["", "share%  of the rest (leaving out socket sends and select: what the process computes)"]
        lines += [f"{share:6.1f}  {name}" for name, share in breakdown(path, computing_only=True).items()]
    lines += ["", "self%  function"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "self%  package (or folder) of the innermost frame"]
    lines += [f"{100 * n / total:5.1f}  {package}" for package, n in by_package.most_common(top)]
    lines += ["", "total%  function"]
    lines += [f"{100 * n / total:6.1f}  {frame}" for frame, n in anywhere.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--under", default=None)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarize(args.profile, args.under, args.top))


if __name__ == "__main__":
    main()
