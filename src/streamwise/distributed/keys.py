"""Every Redis key Streamwise uses, in one place.

A run's keys share the hash tag `{<run id>}` (`run:{id}:events`, `run:{id}:attempt`, ...), so a Redis
Cluster keeps them in one slot and a Lua script may touch several of them at once. Every key starts
with a prefix (default `streamwise`), so that tests can use a prefix of their own and remove exactly
what they created.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "streamwise"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def run(self, run_id: str, part: str) -> str:
        """`<prefix>:run:{<run id>}:<part>`: events, attempt, cancel, lease, ..."""
        return f"{self.prefix}:run:{{{run_id}}}:{part}"

    def events(self, run_id: str) -> str:
        return self.run(run_id, "events")

    def attempt(self, run_id: str) -> str:
        """The fencing token: INCR on every take-over; appends carry the value they were given."""
        return self.run(run_id, "attempt")

    def cancel(self, run_id: str) -> str:
        return self.run(run_id, "cancel")

    def lease(self, run_id: str) -> str:
        return self.run(run_id, "lease")

    @property
    def jobs(self) -> str:
        """The stream of runs waiting for a worker (consumer group `workers`)."""
        return f"{self.prefix}:jobs"

    @property
    def cancels(self) -> str:
        """The pub/sub channel cancel notices are published on."""
        return f"{self.prefix}:cancels"

    def pattern(self) -> str:
        """A SCAN pattern matching every key with this prefix."""
        return f"{self.prefix}:*"
