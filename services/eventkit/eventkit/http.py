"""What every service's HTTP API shares: who is calling (the actor recorded on every command)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from eventkit.events import Actor

STAFF_ROLES = ("coordinator", "physician", "cashier", "auditor")


async def current_actor(
    x_staff_id: Annotated[str | None, Header(max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")] = None,
    x_staff_role: Annotated[str | None, Header(pattern="^(coordinator|physician|cashier|auditor)$")] = None,
) -> Actor:
    """The caller as the desk's gateway identified them.

    Until bearer-token authentication lands (issue 7) the identity comes from the X-Staff-Id and
    X-Staff-Role headers set by the hospital's gateway; unidentified calls are recorded as `unidentified`.
    """
    return Actor(id=x_staff_id or "unidentified", role=x_staff_role or "unidentified")
