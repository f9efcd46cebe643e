"""Kept for `<service>.app` importers (bench, tools): the service is built in bootstrap."""

from billing.bootstrap import build, runtime_for

__all__ = ["build", "runtime_for"]
