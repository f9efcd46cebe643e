"""The one place that builds billing from its settings and adapters: the handlers with their dependencies bound (one
table for the desk's commands, the charge worker's report and the commands other services' events become), the
charge worker and its payment gateway, and the ASGI app around them. Tests call `bind_handlers` (then give the
handlers fake units of work) or `build` with their own settings, clock, gateway and intake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from billing import api
from billing.charge_queue import ChargeQueue
from billing.charges import ChargeWorker, RetryPolicy
from billing.consumers import COMMANDS
from billing.domain import FeeSchedule
from billing.gateway import PaymentGateway
from billing.gateway_http import HttpPaymentGateway
from billing.gateway_simulator import GatewaySimulator
from billing.handlers import HANDLERS
from billing.payers import PostgresSealedPayers, SealedPayers
from billing.projections import PROJECTIONS
from billing.repository import EVENT_TYPES, PostgresReceiptBook, ReceiptBook
from billing.settings import BillingSettings
from eventkit.bootstrap import BoundHandler, Dispatcher, bind
from eventkit.clock import Clock, utc_now
from eventkit.consumer import reactions_by_command
from eventkit.documents import HospitalSettings
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.service_identity import IntakeDisclosure, intake_disclosure
from eventkit.settings import ServiceSettings

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


def bind_handlers(settings: BillingSettings, clock: Clock, *, receipts: ReceiptBook | None = None,
                  payers: SealedPayers | None = None) -> dict[type, BoundHandler]:
    """The handlers' table with their dependencies bound: `(command, uow)` each (tests pass fakes of the units of
    work, the receipt book and the sealed payers)."""
    return bind(HANDLERS, fees=FeeSchedule(settings.fee_schedule),
                qualified_invoice_number=settings.qualified_invoice_number, clock=clock,
                receipts=receipts or PostgresReceiptBook(), payers=payers or PostgresSealedPayers())


def _gateway_url(settings: BillingSettings) -> str:
    if settings.gateway_url:
        return settings.gateway_url
    # Development without a gateway: this app serves the simulator itself and charges through it over HTTP.
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host  # noqa: S104
    return f"http://{host}:{settings.http_port}{SIMULATOR_PATH}"


def _charge_worker(settings: BillingSettings, runtime: ServiceRuntime, handle: Dispatcher, clock: Clock,
                   gateway: PaymentGateway | None) -> ChargeWorker:
    api_key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
    gateway = gateway or HttpPaymentGateway(_gateway_url(settings), api_key=api_key,
                                            timeout=settings.gateway_timeout_seconds)
    policy = RetryPolicy(max_tries=settings.charge_max_tries, backoff_seconds=settings.charge_backoff_seconds,
                         backoff_max_seconds=settings.charge_backoff_max_seconds)
    return ChargeWorker(ChargeQueue(runtime.pool), handle, clock, gateway, dsn=settings.database_url, policy=policy,
                        gateway_timeout=settings.gateway_timeout_seconds, sweep_seconds=settings.charge_sweep_seconds,
                        concurrency=settings.charge_concurrency)


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None,
          gateway: PaymentGateway | None = None, intake: IntakeDisclosure | None = None,
          hospital: HospitalSettings | None = None) -> FastAPI:
    settings = settings or BillingSettings()
    assert isinstance(settings, BillingSettings), f"billing needs BillingSettings, not {type(settings).__name__}"
    clock = clock or utc_now
    handlers = bind_handlers(settings, clock)

    def charge_worker(runtime: BillingRuntime) -> ChargeWorker:
        return _charge_worker(settings, runtime, Dispatcher(handlers, runtime.units_of_work), clock, gateway)

    runtime = BillingRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS],
                             reactions=lambda _: reactions_by_command(COMMANDS, handlers), charge_worker=charge_worker)
    app = create_app(
        runtime, title="Second opinion — billing",
        description="Self-pay fees: invoices, counter payments, online card charges, refunds, receipts, takings.",
        routers=[api.router],
        handlers=handlers, clock=clock,
    )
    app.state.intake = intake or intake_disclosure("billing", settings.intake_url)
    app.state.hospital = hospital or HospitalSettings()  # who issues the printed receipts
    app.state.qualified_invoice_number = settings.qualified_invoice_number
    if not settings.gateway_url:
        app.mount(SIMULATOR_PATH, GatewaySimulator().app())
    return app
