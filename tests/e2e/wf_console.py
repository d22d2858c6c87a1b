"""A workflow the console's browser test fails and retries, loadable with
``SIGNOFF_WORKFLOWS=tests.e2e.wf_console`` (next to ``tests.e2e.wf_approvals``).

``payout`` is three plain steps in a row; its middle step fails while the file named by
``CONSOLE_TEST_FAIL_FLAG`` exists, so a test can fail a run in a real ``signoff serve``,
remove the file, and retry the run from the console.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from engine import Workflow, step


class Payout(BaseModel):
    """A payout to a vendor, in cents."""

    vendor: str
    cents: int


def _broken() -> bool:
    flag = os.environ.get("CONSOLE_TEST_FAIL_FLAG")
    return bool(flag) and Path(flag).exists()


@step(title="Add the fee")
async def add_fee(p: Payout) -> Payout:
    """The fee is 30 cents."""
    return Payout(vendor=p.vendor, cents=p.cents + 30)


@step(title="Send to the bank")
async def send_to_bank(p: Payout) -> Payout:
    """Fails while the bank is 'down' (the flag file exists)."""
    if _broken():
        raise ConnectionError("the bank's API is down (503)")
    return p


@step(title="Record the payout")
async def record_payout(p: Payout) -> Payout:
    """Nothing to do in the test."""
    return p


payout = Workflow("payout", input=Payout, output=Payout).then(add_fee).then(send_to_bank)
payout = payout.then(record_payout)

WORKFLOWS = [payout]
