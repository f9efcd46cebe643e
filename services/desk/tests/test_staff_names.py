"""Staff shown by their names: the desk's table of who signed in (written at sign-in, the name and roles as they
are now), the hospital's staff directory named first, the names a page shows in one query, and the template helper
(the name with the id in its title; an unknown id as it is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from desk.staff_names import StaffNames, directory_names, staff_label
from eventkit.testing import fetch

from .test_security import desk, sign_in


class CountingPool:
    """The session pool, counting the queries the names take."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.queries = pool, 0

    async def fetch(self, *args: Any) -> list[asyncpg.Record]:
        self.queries += 1
        return await self.pool.fetch(*args)


async def test_each_sign_in_keeps_the_name_and_roles_by_staff_id(database: str) -> None:
    async with desk(database) as client:
        for staff_id, *roles in (("dr-sato", "physician"), ("dr-sato", "physician", "coordinator"),
                                 ("someone.new", "cashier")):  # a name typed on the development page: the id
            client.cookies.clear()  # another browser
            await sign_in(client, staff_id, *roles)
    rows = await fetch(database, "SELECT staff_id, display_name, roles, last_seen_at FROM desk_staff ORDER BY 1")
    assert [(r["staff_id"], r["display_name"], json.loads(r["roles"])) for r in rows] == [
        ("dr-sato", "佐藤 医師", ["coordinator", "physician"]), ("someone.new", "someone.new", ["cashier"])]


async def test_the_names_a_page_shows_come_in_one_query_the_directory_first(database: str, tmp_path: Path) -> None:
    listed = tmp_path / "staff.json"
    listed.write_text(json.dumps([{"subject": "idp|77", "staff_id": "dr-tanaka", "name": "田中 一郎",
                                   "departments": ["cardiology"], "roles": ["physician"]},
                                  {"subject": "idp|78", "staff_id": "dr-sato", "name": "佐藤 花子（循環器内科）",
                                   "roles": ["physician"]}]))
    async with desk(database, STAFF_DIRECTORY_FILE=str(listed)) as client:
        await sign_in(client, "dr-sato", "physician")
        client.cookies.clear()
        await sign_in(client, "coord-1", "coordinator")
        app = client.app  # type: ignore[attr-defined]
        counting = CountingPool(app.state.sessions.pool)
        names = StaffNames(counting, app.state.staff_names.directory)  # type: ignore[arg-type]
        found = await names.names(["dr-sato", "coord-1", "dr-tanaka", "nobody", "coord-1", None, ""])
        assert found == {"dr-sato": "佐藤 花子（循環器内科）", "coord-1": "受付 花子", "dr-tanaka": "田中 一郎"}
        assert counting.queries == 1, "one query for every name the page needs"
        assert await names.names(["dr-tanaka"]) == {"dr-tanaka": "田中 一郎"}
        assert counting.queries == 1, "the directory's names need no query"
        assert await names.names([]) == {}
        assert counting.queries == 1
    assert directory_names(None) == {}


def test_a_staff_member_shows_by_name_with_the_id_in_the_title_and_an_unknown_id_as_it_is() -> None:
    names = {"dr-sato": "佐藤 医師", "x": "<b>x</b>"}
    assert staff_label("dr-sato", names, "職員ID") == (
        '<span class="staff" data-staff-id="dr-sato" title="職員ID: dr-sato">佐藤 医師</span>')
    assert staff_label("dr-sato", names, "Staff id", plain=True) == "佐藤 医師（dr-sato）"
    assert staff_label("dr-kato", names, "職員ID") == "dr-kato"
    assert staff_label("<dr>", names, "職員ID") == "&lt;dr&gt;"
    assert "<b>" not in staff_label("x", names, "職員ID"), "a name is escaped"
    assert staff_label(None, names, "職員ID") == ""
