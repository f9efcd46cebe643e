"""`make bench`: every benchmark of docs/BENCHMARKS.md in one run, against this machine's PostgreSQL and RabbitMQ.

    uv run --frozen --group bench python -m bench [--cases 150 --rate 3,flat ...]   (see --help)

In order: the raw floor (aio-pika + asyncpg, no business logic), each consuming service draining a backlog
(its rate as a ratio of that floor), the database statements one event costs each service, the event store
beside the `eventsourcing` library's PostgreSQL recorder, the reporting projection rebuild, the load
generator's case flows (paced and/or flat out), and the floor once more, to show how much the machine's
conditions moved during the run. Results: a summary on stdout, everything as JSON in --out.
Progress goes to stderr. Every database and vhost is fresh and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import consumers, floor, flows, rebuild, store
from bench.common import log, machine
from bench.profile_summary import summarize

SECTIONS = ("floor", "consumers", "statements", "store", "rebuild", "flows")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"

# Issue 8's targets, checked against this run's figures (reported, never asserted).
SERVICE_SHARE_OF_FLOOR = 0.5
APPENDS_OVER_EVENTSOURCING = 5.0
REBUILD_EVENTS_PER_S = 20_000
ACCEPTED_TO_INVOICE_P99_MS = 100.0
TARGET_CASES_PER_S = 100.0


def _rates(text: str) -> list[float | None]:
    """"3,flat" -> [3.0, None]; "flat" or "0" is flat out."""
    rates: list[float | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        rates.append(None if part in ("flat", "0") else float(part))
    if not rates:
        raise argparse.ArgumentTypeError("give at least one rate (cases/s) or 'flat'")
    return rates


def parse(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--floor-events", type=int, default=5000, help="messages per floor measurement")
    parser.add_argument("--consumer-events", type=int, default=2000, help="backlog per consuming service")
    parser.add_argument("--statement-events", type=int, default=200,
                        help="events per service for counting database statements (0: skip)")
    parser.add_argument("--store-events", type=int, default=2000,
                        help="new-stream appends per store and writer count")
    parser.add_argument("--rebuild-events", type=int, default=200_000, help="events in the log to rebuild from")
    parser.add_argument("--cases", type=int, default=80, help="case flows per load run")
    parser.add_argument("--rate", type=_rates, default=_rates("1,flat"),
                        help="comma-separated load runs: cases/s (open loop) or 'flat' (default: 1,flat)")
    parser.add_argument("--concurrency", type=int, default=16, help="cases in flight when flat out")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the consumers and the services under load with py-spy, raw stacks in this folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    args = parser.parse_args(arguments)
    args.only = [section.strip() for section in args.only.split(",") if section.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    return args


def save(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every chosen section in order; the results file is rewritten after each, so a run cut short (a broker
    restarted under it, say) keeps what it measured."""
    begun = time.monotonic()
    parameters = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "parameters": parameters, "machine": await machine()}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    floor_drain: float | None = None
    floor_live: float | None = None
    if "floor" in args.only or "consumers" in args.only:
        results["floor"] = await floor.measure(args.floor_events)
        floor_drain = results["floor"]["drain"]["events_per_s"]
        floor_live = results["floor"]["live"]["events_per_s"]
        save(results, args.out)
    if "consumers" in args.only:
        results["consumers"] = await consumers.measure(args.consumer_events, floor_drain, floor_live,
                                                       profile_dir=args.profile)
        save(results, args.out)
    if "statements" in args.only and args.statement_events > 0:
        results["statements_per_event"] = {}
        for subject in consumers.SUBJECTS:
            log(f"statements: counting {subject.service}'s database statements over {args.statement_events} events")
            try:
                results["statements_per_event"][subject.service] = await consumers.statements_per_event(
                    subject, args.statement_events)
            except Exception as error:  # a service still being written: say so, measure the rest
                results["statements_per_event"][subject.service] = {"error": repr(error)[:300]}
        save(results, args.out)
    if "store" in args.only:
        results["store"] = await store.measure(args.store_events)
        save(results, args.out)
    if "rebuild" in args.only:
        results["rebuild"] = await rebuild.measure(args.rebuild_events)
        save(results, args.out)
    if "flows" in args.only:
        results["flows"] = []
        for rate in args.rate:
            outcome = await flows.run(args.cases, rate, args.concurrency, profile_dir=args.profile)
            if floor_drain:
                outcome["events_on_bus_per_s_over_floor"] = round(outcome["events_per_s_on_bus"] / floor_drain, 3)
            results["flows"].append(outcome)
            save(results, args.out)
    if "floor" in args.only and ("consumers" in args.only or "flows" in args.only):
        log("floor: once more at the end, to see how much the machine's conditions moved during the run")
        results["floor_at_end"] = {"drain": await floor.drain(args.floor_events)}
    if args.profile:
        results["profiles"] = {path.name: summarize(path, None, 15).splitlines()
                               for path in sorted(args.profile.glob("*.raw"))}
    results["targets"] = targets(results)
    results["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["seconds"] = round(time.monotonic() - begun, 1)
    save(results, args.out)
    return results


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets beside this run's figures."""
    checked: list[dict[str, Any]] = []
    for service, result in results.get("consumers", {}).items():
        ratio = result.get("ratio_to_floor")
        checked.append({"target": f"{service} handles >= {SERVICE_SHARE_OF_FLOOR:.0%} of the floor",
                        "measured": ratio, "met": ratio is not None and ratio >= SERVICE_SHARE_OF_FLOOR})
    store = results.get("store", {})
    for placement, label in (("eventkit_over_eventsourcing", "relay in this process"),
                             ("eventkit_relay_elsewhere_over_eventsourcing", "relay elsewhere")):
        for key, ratio in store.get(placement, {}).items():
            if key.startswith("append"):
                checked.append({"target": f"{key} ({label}): eventkit >= {APPENDS_OVER_EVENTSOURCING:g}x eventsourcing",
                                "measured": ratio, "met": ratio >= APPENDS_OVER_EVENTSOURCING})
    if "rebuild" in results:
        rate = results["rebuild"]["events_per_s"]
        checked.append({"target": f"rebuild >= {REBUILD_EVENTS_PER_S} events/s "
                                  f"({results['rebuild']['events']} events in the log)",
                        "measured": rate, "met": rate >= REBUILD_EVENTS_PER_S})
    for outcome in results.get("flows", []):
        p99 = outcome["case_accepted_to_invoice_issued"].get("p99_ms")
        checked.append({"target": f"CaseAccepted -> InvoiceIssued p99 < {ACCEPTED_TO_INVOICE_P99_MS:g} ms at "
                                  f"{TARGET_CASES_PER_S:g} cases/s (this run: {outcome['mode']}, "
                                  f"{outcome['completed_cases_per_s']} cases/s completed)",
                        "measured": p99,
                        "met": p99 is not None and p99 < ACCEPTED_TO_INVOICE_P99_MS
                        and (outcome["completed_cases_per_s"] or 0) >= TARGET_CASES_PER_S})
    return checked


def _line(label: str, value: object) -> str:
    return f"  {label:<58} {value}"


def summary(results: dict[str, Any]) -> str:
    host = results["machine"]
    lines = [f"bench {results['started_at']}: {host['cpus']} x {host['cpu_model']}, {host['memory_gib']} GiB, "
             f"Python {host['python']}, PostgreSQL {host['postgresql']}, RabbitMQ {host['rabbitmq']}, "
             f"{results['seconds']} s"]
    if "floor" in results:
        drain, live = results["floor"]["drain"], results["floor"]["live"]
        lines += ["floor (aio-pika confirms + ack, one asyncpg transaction per event)",
                  _line("drain a backlog, events/s", drain["events_per_s"]),
                  _line("live publisher, events/s", live["events_per_s"])]
        if "floor_at_end" in results:
            lines.append(_line("drain again at the end of the run, events/s",
                               results["floor_at_end"]["drain"]["events_per_s"]))
        cpu = drain["cpu"]
        lines.append(_line("during the drain: other processes' CPU, cores", cpu["other_cores"]))
        lines.append(_line("during the drain: share of time bench waited for a CPU", cpu["bench_waiting_for_cpu"]))
    if "consumers" in results:
        lines.append("consuming services, draining a backlog (ratio to the floor's drain; to its live publisher)")
        for service, result in results["consumers"].items():
            shown = (f"{result.get('events_per_s')} events/s  ratio {result.get('ratio_to_floor')};"
                     f" {result.get('ratio_to_live_floor')}"
                     if "pending" not in result else f"did not run: {result['pending'][:80]}")
            lines.append(_line(service, shown))
    if "statements_per_event" in results:
        lines.append("database statements per handled event")
        for service, counted in results["statements_per_event"].items():
            lines.append(_line(service, counted.get("total", counted.get("error"))))
    if "store" in results:
        kit, library = results["store"]["eventkit"], results["store"]["eventsourcing"]
        lines.append("event store: eventkit vs eventsourcing (PostgreSQL application recorder), per second")
        for key, ratio in results["store"]["eventkit_over_eventsourcing"].items():
            lines.append(_line(key, f"{kit[key]} vs {library[key]}  ({ratio}x)"))
        elsewhere = results["store"]["eventkit_relay_elsewhere"]
        for key, ratio in results["store"]["eventkit_relay_elsewhere_over_eventsourcing"].items():
            lines.append(_line(f"{key}, relay in another process", f"{elsewhere[key]} vs {library[key]}  ({ratio}x)"))
    if "rebuild" in results:
        rebuilt = results["rebuild"]
        lines += ["projection rebuild", _line(f"reporting case board from {rebuilt['events']} events, events/s",
                                              rebuilt["events_per_s"])]
    for outcome in results.get("flows", []):
        lines += [f"case flows: {outcome['mode']}",
                  _line("cases completed / started", f"{outcome['cases_completed']} / {outcome['cases']}"),
                  _line("completed cases/s; events/s on the bus",
                        f"{outcome['completed_cases_per_s']}; {outcome['events_per_s_on_bus']}"),
                  _line("CaseAccepted -> InvoiceIssued", _percentiles(outcome["case_accepted_to_invoice_issued"])),
                  _line(f"CaseSubmitted -> {flows.FINAL_EVENT}",
                        _percentiles(outcome[f"case_submitted_to_{flows.FINAL_EVENT}"]))]
        lines += [_line(route, _percentiles(figures)) for route, figures in outcome["http"].items()]
        lines += [_line(wait, _percentiles(figures)) for wait, figures in outcome["acted_on_event"].items()]
        if outcome["failures"]:
            lines.append(_line("failures", outcome["failures"]))
    lines.append("the targets (docs/BENCHMARKS.md)")
    lines += [_line(("met    " if item["met"] else "MISSED ") + item["target"], item["measured"])
              for item in results["targets"]]
    return "\n".join(lines)


def _percentiles(figures: dict[str, Any]) -> str:
    if not figures.get("count"):
        return "none"
    return f"p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']}, p99 {figures['p99_ms']}, max {figures['max_ms']}"


def main() -> None:
    args = parse()
    results = asyncio.run(run(args))
    print(summary(results))
    print(f"\nall figures: {args.out}")


if __name__ == "__main__":
    main()
