"""Staff shown by their names, not their staff ids: the desk keeps who signed in (staff id, the name the identity
provider or the development sign-in gave, roles, last seen) in its own database, and the hospital's staff
directory (`STAFF_DIRECTORY_FILE`, eventkit.staff) names its members first. A page asks for the names it shows
in one query; the template's `staff_name(id)` shows the name with the id in its title, an unknown id as itself."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from markupsafe import Markup, escape

from eventkit.staff import StaffDirectory, StaffSettings


def directory_names(path: Path | None) -> dict[str, str]:
    """Staff id -> name of every member the hospital's directory file lists (none without a file)."""
    if path is None:
        return {}
    directory = StaffDirectory(StaffSettings(STAFF_DIRECTORY_FILE=path))
    return {entry.staff_id: entry.name for entry in directory.entries.values()}


@dataclass(frozen=True)
class StaffNames:
    pool: asyncpg.Pool
    directory: Mapping[str, str] = field(default_factory=dict)

    async def seen(self, staff_id: str, display_name: str, roles: list[str]) -> None:
        """A sign-in: the name and roles as they are now, and when."""
        await self.pool.execute(
            """INSERT INTO desk_staff (staff_id, display_name, roles, last_seen_at) VALUES ($1, $2, $3, now())
               ON CONFLICT (staff_id) DO UPDATE
               SET display_name = EXCLUDED.display_name, roles = EXCLUDED.roles, last_seen_at = now()""",
            staff_id, display_name, json.dumps(sorted(roles)))

    async def names(self, staff_ids: Iterable[object]) -> dict[str, str]:
        """The names of `staff_ids` that are known (the directory's first), in one query at most."""
        wanted = {str(staff_id) for staff_id in staff_ids if staff_id}
        found = {staff_id: self.directory[staff_id] for staff_id in wanted if staff_id in self.directory}
        rest = sorted(wanted - found.keys())
        if rest:
            rows = await self.pool.fetch(
                "SELECT staff_id, display_name FROM desk_staff WHERE staff_id = ANY($1::text[])", rest)
            found.update({row["staff_id"]: row["display_name"] for row in rows})
        return found


def staff_label(staff_id: object, names: Mapping[str, str], id_word: str, plain: bool = False) -> Markup:
    """A staff member as a page shows them: the name, the id in its title; an id nobody is known by, as it is.
    `plain` (where no markup may go, an <option>): the name, the id in brackets."""
    if staff_id in (None, ""):
        return Markup("")
    name = names.get(str(staff_id))
    if not name or name == staff_id:
        return escape(str(staff_id))
    if plain:
        return escape(f"{name}（{staff_id}）")
    return Markup('<span class="staff" data-staff-id="{0}" title="{1}: {0}">{2}</span>').format(
        str(staff_id), id_word, name)
