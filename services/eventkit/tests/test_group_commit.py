"""The group committer alone (no database): every piece of work handed in is committed and answered, whatever the
timing of the committers."""

from __future__ import annotations

import asyncio

import pytest

from eventkit.batching import GroupCommitter, Pending


async def answer_at_once(batch: list[Pending[int, int]]) -> None:
    for pending in batch:
        pending.resolve(pending.work * 2)


@pytest.mark.parametrize("concurrent_batches", [1, 2])
async def test_work_handed_in_as_a_committer_finishes_is_still_committed(concurrent_batches: int) -> None:
    # A batch answered without awaiting: its writers wake and hand in their next work in the very steps in which the
    # committer finds nothing left and ends. That work must start a committer of its own, or wait forever.
    committer = GroupCommitter(answer_at_once, batch_max=32, concurrent_batches=concurrent_batches)

    async def writer(first: int) -> list[int]:
        return [await committer.run(work) for work in range(first, first + 200)]

    answers = await asyncio.wait_for(asyncio.gather(*(writer(i * 1000) for i in range(8))), timeout=30)
    assert answers == [[work * 2 for work in range(i * 1000, i * 1000 + 200)] for i in range(8)]


async def test_work_with_the_same_key_never_shares_a_batch() -> None:
    batches: list[list[str]] = []

    async def record(batch: list[Pending[str, str]]) -> None:
        batches.append([pending.work for pending in batch])
        await asyncio.sleep(0)
        for pending in batch:
            pending.resolve(pending.work)

    committer = GroupCommitter(record, batch_max=32, concurrent_batches=1, key=lambda work: work.split(":")[0])
    works = ["a:1", "b:1", "a:2", "c:1", "a:3", "b:2"]
    assert await asyncio.gather(*(committer.run(work) for work in works)) == works
    assert all(len({work.split(":")[0] for work in batch}) == len(batch) for batch in batches)
    assert batches[0] == ["a:1", "b:1", "c:1"]
    assert sorted(work for batch in batches for work in batch) == sorted(works)


async def test_work_with_the_same_key_waits_for_the_batch_committing_its_twin_in_another_committer() -> None:
    release = asyncio.Event()
    committed: list[str] = []

    async def commit_holding_a1(batch: list[Pending[str, str]]) -> None:
        works = [pending.work for pending in batch]
        if "a:1" in works:
            await release.wait()
        committed.extend(works)
        for pending in batch:
            pending.resolve(pending.work)

    committer = GroupCommitter(commit_holding_a1, batch_max=32, concurrent_batches=2,
                               key=lambda work: work.split(":")[0])
    first = asyncio.create_task(committer.run("a:1"))
    await asyncio.sleep(0)  # its batch is committing (held)
    later = [asyncio.create_task(committer.run(work)) for work in ("a:2", "b:1")]
    await asyncio.sleep(0.05)
    assert committed == ["b:1"], "the second committer takes b:1; a:2 waits for a:1's batch, not racing it"
    release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), timeout=5) == ["a:1", "a:2", "b:1"]
    assert committed == ["b:1", "a:1", "a:2"]
