"""What another service may learn of a case's personal data, and only for its own purpose: intake opens the
sealed data itself and answers just the fields that purpose prints. The caller is a service with its own
token (eventkit.service_identity) acting for a signed-in staff member, whose role must fit the purpose too;
the case must have been accepted (the other services hold nothing of any other case). Both are in the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException

from eventkit.audit import record_access
from eventkit.errors import NotFound
from eventkit.events import Actor
from eventkit.http import on_pool
from eventkit.service_identity import ServiceCall, allow_service
from intake.domain import CaseStatus
from intake.queries import CaseQueries, personal_data

router = APIRouter(tags=["personal data"])


@dataclass(frozen=True)
class Purpose:
    service: str
    roles: frozenset[str]
    # Field in the answer -> field of the sealed personal data.
    fields: dict[str, str]


PURPOSES = {
    "receipt": Purpose("billing", frozenset({"cashier"}), {"payer_name": "requester_name"}),
    "slip": Purpose("scheduling", frozenset({"coordinator"}), {"patient_name": "patient_name"}),
    "report": Purpose("reporting", frozenset({"coordinator", "physician"}), {
        "patient_name": "patient_name", "patient_birth_date": "patient_birth_date",
        "attending_name": "attending_name", "attending_institution": "attending_institution"}),
}


@router.get("/cases/{case_id}/personal-data/for/{purpose}")
async def personal_data_for(case_id: UUID, purpose: Literal["receipt", "slip", "report"],
                            call: Annotated[ServiceCall, Depends(allow_service(
                                *sorted({p.service for p in PURPOSES.values()})))],
                            q: Annotated[CaseQueries, Depends(on_pool(CaseQueries))]) -> dict[str, Any]:
    """The fields one document prints (*** each once erased), for the service that prints it."""
    wanted = PURPOSES[purpose]
    if call.service != wanted.service:
        raise HTTPException(403, f"the {purpose} is printed by the {wanted.service} service")
    roles = set(call.person.roles) & wanted.roles
    if not roles:
        raise HTTPException(403, f"the {purpose} is printed by {', '.join(sorted(wanted.roles))}")
    async with q.pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM case_view WHERE case_id = $1", case_id)
        if status is None:
            raise NotFound(f"no case {case_id}")
        if status != CaseStatus.ACCEPTED:
            raise HTTPException(409, f"the case is {status}: no {purpose} is printed for it")
        person = await personal_data(conn, case_id)
        actor = Actor(id=call.person.staff_id, role=sorted(roles)[0])
        await record_access(conn, actor, case_id, f"read_personal_data_for_{purpose}_via_{call.service}")
    return {"case_id": str(case_id), "purpose": purpose,
            "fields": {name: person.get(source) for name, source in wanted.fields.items()}}
