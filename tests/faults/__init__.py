"""Fault injection: real case flows through the services, run as real processes, while the broker,
the database and the services themselves fail; a checker accounts for every command and event."""
