"""A resolve waiting in a batch, and its decision taken on what the batch read (both SQL
backends batch resolves: ``sqlite.resolving``, ``postgres.resolving``)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InterruptNotFound, RunNotFound
from engine.models import Interrupt, Run
from engine.store.base import Decide, Resolution
from engine.store.rows import Row, run_from_row


@dataclass
class QueuedResolve:
    """The arguments of one ``Store.resolve`` call, queued for its batch."""

    run_id: str
    interrupt_id: str
    decide: Decide
    claim_owner: str
    lease_until: float
    now: float

    def decide_on(
        self, row: Row | None, found: Interrupt | None
    ) -> tuple[Run, Interrupt, Resolution, float]:
        """The run, the interrupt, what ``decide`` returned for them and when it took
        effect (``now`` unless ``decide`` stamped it), from the run's row and the
        interrupt as the batch read them.

        Raises:
            RunNotFound, InterruptNotFound: the batch found no such run or interrupt.
            Whatever ``decide`` raises.
        """
        if row is None:
            raise RunNotFound(self.run_id)
        if found is None:
            raise InterruptNotFound(self.run_id, self.interrupt_id)
        run = run_from_row(row)
        res = self.decide(found, run)
        return run, found, res, self.now if res.at is None else res.at
