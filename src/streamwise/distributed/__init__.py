"""Runs across processes: Redis Streams for dispatch and event relay, PostgreSQL for run status.

The building blocks, each tested against a real Redis: the job queue with leases and take-over
(`dispatch`), a run's event log in a stream with fenced appends (`eventlog`, `event_reader`), and
cancelling from any process (`cancel`). The server does not use them yet: `streamwise worker` and
the API's Redis mode are still to come, and until then every run is in-process.

Nothing here is imported by the engine; the engine sees only the ports it defines (an event sink it
appends to, a cancel it is given).
"""
