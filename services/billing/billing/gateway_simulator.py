"""A stand-in for the telemedicine platform's payment API, for local runs and tests.

It speaks the API `gateway_http` uses: `POST /v1/charges` (amount, currency, reference) with an
`Idempotency-Key` header; a repeated key gets the first answer again, as real gateways do. It can be told
to misbehave on the next calls: `POST /_simulator/faults {"kind": "decline"|"timeout"|"error", "count": N}`.
A `timeout` fault does the work (charge, or replay of the key's first answer) and answers too late: the
lost-reply case idempotency keys exist for. `error` answers 503 and does nothing; `decline` answers 402
card_declined for a new key.

Run alone: `uv run python -m billing.gateway_simulator --port 8090`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["decline", "timeout", "error"]


class ChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(strict=True, gt=0)
    currency: Literal["JPY"]
    reference: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=200)


class FaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    count: int = Field(1, ge=1, le=1000)
    delay_seconds: float = Field(1.0, ge=0, le=60)


@dataclass
class StoredReply:
    request: dict[str, Any]
    status_code: int
    body: dict[str, Any]


@dataclass
class GatewaySimulator:
    api_key: str | None = None
    faults: deque[tuple[FaultKind, float]] = field(default_factory=deque)
    replies: dict[str, StoredReply] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def charges(self) -> list[dict[str, Any]]:
        """Charges that took money (one per idempotency key at most)."""
        return [reply.body for reply in self.replies.values() if reply.status_code == 201]

    def app(self) -> FastAPI:
        app = FastAPI(title="Payment gateway simulator", description=__doc__)

        @app.post("/v1/charges", status_code=201)
        async def create_charge(body: ChargeIn, idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
                                authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
            if self.api_key and authorization != f"Bearer {self.api_key}":
                return _error(401, "authentication_error", "invalid_api_key")
            request = body.model_dump()
            kind, delay = self.faults.popleft() if self.faults else (None, 0.0)
            if kind == "error":
                self.calls.append({"idempotency_key": idempotency_key, **request, "outcome": "error"})
                return _error(503, "api_error", "service_unavailable")
            reply = self.replies.get(idempotency_key)
            if reply is not None:
                outcome = "replayed"
                if reply.request != request:
                    reply = StoredReply(request, 400, {"error": {"type": "idempotency_error",
                                                                 "code": "key_reused_with_other_parameters"}})
            elif kind == "decline":
                outcome = "declined"
                reply = self.replies[idempotency_key] = StoredReply(request, 402, {"error": {
                    "type": "card_error", "code": "card_declined", "message": "The card was declined."}})
            else:
                outcome = "charged"
                reply = self.replies[idempotency_key] = StoredReply(request, 201, {
                    "id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "status": "succeeded",
                    "amount": body.amount, "currency": body.currency, "reference": body.reference,
                    "created": datetime.now(UTC).isoformat()})
            self.calls.append({"idempotency_key": idempotency_key, **request, "outcome": outcome})
            if kind == "timeout":
                await asyncio.sleep(delay)  # done, but the reply comes after the caller gave up
            return JSONResponse(reply.body, status_code=reply.status_code,
                                headers={"Idempotent-Replayed": "true"} if outcome == "replayed" else {})

        @app.get("/v1/charges")
        async def list_charges(reference: str | None = None) -> dict[str, Any]:
            charges = [charge for charge in self.charges if reference is None or charge["reference"] == reference]
            return {"data": charges}

        @app.post("/_simulator/faults", status_code=204)
        async def add_faults(body: FaultsIn) -> None:
            self.faults.extend([(body.kind, body.delay_seconds)] * body.count)

        @app.get("/_simulator/calls")
        async def list_calls() -> dict[str, Any]:
            return {"calls": self.calls}

        @app.post("/_simulator/reset", status_code=204)
        async def reset() -> None:
            self.faults.clear()
            self.replies.clear()
            self.calls.clear()

        return app


def _error(status_code: int, kind: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "code": code}}, status_code=status_code)


@asynccontextmanager
async def running_simulator(simulator: GatewaySimulator | None = None,
                            host: str = "127.0.0.1") -> AsyncIterator[tuple[str, GatewaySimulator]]:
    """Serve a simulator over real HTTP on a free local port in this event loop; yields (base URL, simulator)."""
    simulator = simulator or GatewaySimulator()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(simulator.app(), log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}", simulator
    finally:
        server.should_exit = True
        await task
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m billing.gateway_simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    uvicorn.run(GatewaySimulator(api_key=args.api_key).app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
