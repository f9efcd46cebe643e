from fastapi import FastAPI

from billing.app import build, runtime_for
from billing.settings import BillingSettings
from eventkit.cli import main
from eventkit.settings import ServiceSettings


def _build(settings: ServiceSettings) -> FastAPI:
    assert isinstance(settings, BillingSettings)
    return build(settings)


main(BillingSettings, runtime_for, _build)
