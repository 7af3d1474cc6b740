"""How many clients the hub takes: in all, on one job, and from one address."""

from __future__ import annotations

import collections
from collections.abc import Mapping

from sidecar.core import protocol

MAX_CLIENTS = 1000
MAX_CLIENTS_PER_JOB = 10
MAX_CLIENTS_PER_ADDRESS = 5
"""The defaults (the server's settings take them from here)."""


class TooManyClients(RuntimeError):
    """A client limit is reached; the message says which."""


class ClientLimits:
    """The clients counted against the limits: a job's subscribers (each job counts its own by
    address) and the jobs list's watchers (counted here by address, as one more job).

    Args:
        max_clients: clients allowed in all.
        max_clients_per_job: clients allowed on one job.
        max_clients_per_address: clients allowed on one job (or on the jobs list) from one
            address, so that one client cannot take a job's whole quota.
    """

    def __init__(
        self,
        *,
        max_clients: int = MAX_CLIENTS,
        max_clients_per_job: int = MAX_CLIENTS_PER_JOB,
        max_clients_per_address: int = MAX_CLIENTS_PER_ADDRESS,
    ) -> None:
        self.max_clients = max_clients
        self.max_clients_per_job = max_clients_per_job
        self.max_clients_per_address = max_clients_per_address
        self.count = 0
        """Clients now, subscribers and watchers together."""
        self._watchers: collections.Counter[str] = collections.Counter()

    def check_subscriber(
        self, subscribers: int, by_address: Mapping[str | None, int], address: str | None
    ) -> None:
        """Whether one more client may follow a job that has ``subscribers`` already,
        ``by_address``; the caller counts it (``count``) once it is one.

        Raises:
            TooManyClients: a limit is reached.
        """
        self._admit()
        if subscribers >= self.max_clients_per_job:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS_FOR_JOB.reason)
        if address is not None and by_address.get(address, 0) >= self.max_clients_per_address:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS_FROM_ADDRESS.reason)

    def admit_watcher(self, address: str | None) -> None:
        """Count one more client of the jobs list, from ``address``.

        Raises:
            TooManyClients: a limit is reached (nothing is counted then).
        """
        self._admit()
        if address is not None and self._watchers[address] >= self.max_clients_per_address:
            raise TooManyClients(protocol.TOO_MANY_JOBS_LIST_CLIENTS_FROM_ADDRESS.reason)
        self.count += 1
        if address is not None:
            self._watchers[address] += 1

    def joined(self) -> None:
        """One more client of a job (``check_subscriber`` let it in)."""
        self.count += 1

    def released(self, *, watcher_address: str | None = None, watcher: bool = False) -> None:
        """One client fewer (a watcher of the jobs list, from ``watcher_address``, if
        ``watcher``); an address with none left is forgotten."""
        self.count -= 1
        if watcher and watcher_address is not None:
            self._watchers[watcher_address] -= 1
            if not self._watchers[watcher_address]:
                del self._watchers[watcher_address]

    def _admit(self) -> None:
        if self.count >= self.max_clients:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS.reason)
