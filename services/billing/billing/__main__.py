from billing.bootstrap import build, runtime_for
from billing.settings import BillingSettings
from eventkit.cli import main

main(BillingSettings, runtime_for, build)
