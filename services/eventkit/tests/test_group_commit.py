"""The group committer alone (no database): every piece of work handed in is committed and answered, whatever the
timing of the committers."""

from __future__ import annotations

import asyncio

import pytest

from eventkit.group_commit import GroupCommitter, Pending


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


@pytest.mark.parametrize("shared_out", [True, False])
async def test_work_handed_in_together_is_shared_out_among_the_free_committers(shared_out: bool) -> None:
    release = asyncio.Event()
    batches: list[list[int]] = []
    committing = 0
    most_committing = 0

    async def commit_held(batch: list[Pending[int, int]]) -> None:
        nonlocal committing, most_committing
        batches.append([pending.work for pending in batch])
        committing += 1
        most_committing = max(most_committing, committing)
        await release.wait()
        committing -= 1
        for pending in batch:
            pending.resolve(pending.work)

    committer = GroupCommitter(commit_held, batch_max=32, concurrent_batches=2, shared_out=shared_out)
    # Eight writers handing in in one step, as writers released by one commit do.
    works = [asyncio.create_task(committer.run(work)) for work in range(8)]
    await asyncio.sleep(0.05)
    if shared_out:
        assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]], "half each, committing at once"
        assert most_committing == 2
    else:
        assert batches == [list(range(8))], "the first committer takes all it may"
        assert most_committing == 1
    release.set()
    assert await asyncio.wait_for(asyncio.gather(*works), timeout=5) == list(range(8))


async def test_shared_out_work_never_exceeds_the_batch_limit_and_a_lone_piece_goes_at_once() -> None:
    batches: list[list[int]] = []

    async def record(batch: list[Pending[int, int]]) -> None:
        batches.append([pending.work for pending in batch])
        await asyncio.sleep(0)
        for pending in batch:
            pending.resolve(pending.work)

    committer = GroupCommitter(record, batch_max=3, concurrent_batches=2, shared_out=True)
    assert await committer.run(99) == 99
    assert batches == [[99]]
    batches.clear()
    assert await asyncio.gather(*(committer.run(work) for work in range(10))) == list(range(10))
    assert max(len(batch) for batch in batches) == 3
    assert sorted(work for batch in batches for work in batch) == list(range(10))


async def test_the_share_a_committer_leaves_behind_gets_a_committer_of_its_own() -> None:
    # a:2 and c:2 wait for the batch committing their twins; the other committer finds only them and ends. When that
    # batch is done, its committer takes a share (one) and must start a committer for the rest, or c:2 waits for
    # a:2's batch, which here waits for c:2.
    release = {work: asyncio.Event() for work in ("a:1", "b:1")}
    committed: list[str] = []
    c2_committed = asyncio.Event()

    async def commit(batch: list[Pending[str, str]]) -> None:
        works = [pending.work for pending in batch]
        for work in works:
            if work in release:
                await release[work].wait()
        if "a:2" in works:
            await asyncio.wait_for(c2_committed.wait(), timeout=5)
        committed.extend(works)
        if "c:2" in works:
            c2_committed.set()
        for pending in batch:
            pending.resolve(pending.work)

    committer = GroupCommitter(commit, batch_max=32, concurrent_batches=2, shared_out=True,
                               key=lambda work: work.split(":")[0])
    tasks = [asyncio.create_task(committer.run("b:1"))]
    await asyncio.sleep(0)  # b:1 committing (held) in one committer
    tasks += [asyncio.create_task(committer.run(work)) for work in ("a:1", "c:1")]
    await asyncio.sleep(0)  # a:1 and c:1 together in the other (held)
    tasks += [asyncio.create_task(committer.run(work)) for work in ("a:2", "c:2")]
    await asyncio.sleep(0.01)
    release["b:1"].set()  # its committer finds only a:2 and c:2, both held back by their twins, and ends
    await asyncio.sleep(0.01)
    release["a:1"].set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), timeout=10) == ["b:1", "a:1", "c:1", "a:2", "c:2"]
    assert committed == ["b:1", "a:1", "c:1", "c:2", "a:2"]
