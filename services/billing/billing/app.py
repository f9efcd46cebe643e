"""The one place that wires billing's concrete adapters: build() returns the ASGI app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from billing import api, consumers
from billing.charges import ChargeWorker, RetryPolicy
from billing.domain import FeeSchedule
from billing.gateway import PaymentGateway
from billing.gateway_http import HttpPaymentGateway
from billing.gateway_simulator import GatewaySimulator
from billing.handlers import BillingHandlers
from billing.payers import IntakeKeys
from billing.settings import BillingSettings
from billing.store import EVENT_TYPES, PROJECTIONS, ChargeQueue
from eventkit.clock import Clock, utc_now
from eventkit.consumer import Handler
from eventkit.documents import HospitalSettings
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from secondopinion_contracts import EventData

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SIMULATOR_PATH = "/gateway-simulator"


class BillingRuntime(ServiceRuntime):
    """The shared runtime plus the charge worker, which runs wherever events are consumed."""

    def __init__(self, settings: ServiceSettings, *,
                 charge_worker: Callable[[BillingRuntime], ChargeWorker] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._charge_worker_factory = charge_worker
        self.charge_worker: ChargeWorker | None = None

    async def start(self, *, relay: bool = True, consume: bool = True) -> None:
        await super().start(relay=relay, consume=consume)
        if consume and self._charge_worker_factory is not None:
            self.charge_worker = self._charge_worker_factory(self)
            self.charge_worker.start()

    async def stop(self) -> None:
        if self.charge_worker is not None:
            await self.charge_worker.stop()
            self.charge_worker = None
        await super().stop()

    async def readiness(self) -> dict[str, bool]:
        checks = await super().readiness()
        if self.charge_worker is not None:
            checks["charge_worker"] = self.charge_worker.running
        return checks


def runtime_for(settings: ServiceSettings) -> ServiceRuntime:
    """For `migrate` and `rebuild`: the store, projections and migrations, no consumer or worker."""
    return ServiceRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS])


class _Wiring:
    def __init__(self, settings: BillingSettings, clock: Clock, gateway: PaymentGateway | None,
                 gateway_url: str) -> None:
        self.settings = settings
        self.clock = clock
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.fees = FeeSchedule(settings.fee_schedule)
        self._handlers: BillingHandlers | None = None

    def handlers(self, runtime: ServiceRuntime) -> BillingHandlers:
        if self._handlers is None or self._handlers.store is not runtime.store:
            self._handlers = BillingHandlers(runtime.store, self.fees, self.settings.qualified_invoice_number,
                                             self.clock)
        return self._handlers

    def consumer_handlers(self, runtime: ServiceRuntime) -> Mapping[type[EventData], Handler]:
        return consumers.handlers(self.handlers(runtime))

    def charge_worker(self, runtime: BillingRuntime) -> ChargeWorker:
        settings = self.settings
        api_key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
        gateway = self.gateway or HttpPaymentGateway(self.gateway_url, api_key=api_key,
                                                     timeout=settings.gateway_timeout_seconds)
        policy = RetryPolicy(max_tries=settings.charge_max_tries, backoff_seconds=settings.charge_backoff_seconds,
                             backoff_max_seconds=settings.charge_backoff_max_seconds)
        return ChargeWorker(ChargeQueue(runtime.pool), self.handlers(runtime), gateway, dsn=settings.database_url,
                            policy=policy, gateway_timeout=settings.gateway_timeout_seconds,
                            sweep_seconds=settings.charge_sweep_seconds, concurrency=settings.charge_concurrency)


def build(settings: BillingSettings | None = None, *, clock: Clock | None = None,
          gateway: PaymentGateway | None = None, intake_keys: IntakeKeys | None = None,
          hospital: HospitalSettings | None = None) -> FastAPI:
    settings = settings or BillingSettings()
    gateway_url = settings.gateway_url
    if not gateway_url:
        # Development without a gateway: this app serves the simulator itself and charges through it over HTTP.
        host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host  # noqa: S104
        gateway_url = f"http://{host}:{settings.http_port}{SIMULATOR_PATH}"
    wiring = _Wiring(settings, clock or utc_now, gateway, gateway_url)
    runtime = BillingRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS],
                             handlers=wiring.consumer_handlers, charge_worker=wiring.charge_worker)
    app = create_app(
        runtime, title="Second opinion — billing",
        description="Self-pay fees: invoices, counter payments, online card charges, refunds, receipts, takings.",
        routers=[api.router],
        on_start=lambda app, runtime: setattr(app.state, "handlers", wiring.handlers(runtime)),
    )
    app.state.intake_keys = intake_keys or IntakeKeys(settings.intake_url)
    app.state.hospital = hospital or HospitalSettings()  # who issues the printed receipts
    if not settings.gateway_url:
        app.mount(SIMULATOR_PATH, GatewaySimulator().app())
    return app
