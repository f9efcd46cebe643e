"""Prometheus metrics of the shared runtime, labelled by service."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter(
    "secondopinion_events_handled_total", "Consumed events by outcome", ["service", "event_type", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "secondopinion_handler_seconds", "Time to handle one consumed event", ["service", "event_type"]
)
DEAD_LETTERED = Counter("secondopinion_dead_lettered_total", "Messages sent to the DLQ", ["service", "reason"])
OUTBOX_PUBLISHED = Counter("secondopinion_outbox_published_total", "Events published by the relay", ["service"])
OUTBOX_BACKLOG = Gauge("secondopinion_outbox_backlog", "Unpublished outbox rows", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "secondopinion_outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["service"]
)
DLQ_DEPTH = Gauge("secondopinion_dlq_messages", "Messages waiting in the dead-letter queue", ["service"])
# A consumer's projections are updated in the transaction that takes the event in (the inbox), so what is not
# yet in them is exactly what waits in the service's inbox queue; and how late they are is the age of an event
# when its effect is committed.
PROJECTION_LAG = Gauge(
    "secondopinion_projection_lag_events", "Events waiting in the inbox queue, not yet in the projections",
    ["service"],
)
PROJECTION_DELAY = Histogram(
    "secondopinion_projection_delay_seconds", "From an event's recording to its effect in this service's projections",
    ["service", "event_type"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
HTTP_SECONDS = Histogram(
    "secondopinion_http_seconds", "HTTP request latency", ["service", "method", "route", "status"]
)
CONSUMER_BATCH_SIZE = Histogram(
    "secondopinion_consumer_batch_deliveries", "Deliveries handled together in one transaction (group commit)",
    ["service"], buckets=(1, 2, 4, 8, 16, 32, 64),
)
CONSUMER_BATCH_FALLBACKS = Counter(
    "secondopinion_consumer_batch_fallbacks_total",
    "Batches rolled back and handled one delivery at a time because something in them failed", ["service"],
)
APPEND_BATCH_SIZE = Histogram(
    "secondopinion_append_batch_appends", "Appends written together in one statement and transaction (group commit)",
    ["service"], buckets=(1, 2, 4, 8, 16, 32, 64),
)
APPEND_BATCH_FALLBACKS = Counter(
    "secondopinion_append_batch_fallbacks_total",
    "Batches of appends rolled back and written one append at a time because something in them failed", ["service"],
)
