"""Console, second round: retry of failed runs, exact workflow counts, step inputs,
paging both ways."""

from __future__ import annotations

import asyncio
import re

import pytest
from pydantic import BaseModel

from engine import RunStatus, Workflow, step
from tests.bot.web.console.test_pages import note, run_ids, shape, signed_in
from tests.e2e.wf_approvals import WORKFLOWS
from tests.support.console import Site, SiteFactory

pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")


class Money(BaseModel):
    """A tiny input."""

    cents: int


BROKEN = {"charge": True}
CALLS: dict[str, int] = {}


@step
async def quote(m: Money) -> Money:
    """Add the fee."""
    CALLS["quote"] = CALLS.get("quote", 0) + 1
    return Money(cents=m.cents + 30)


@step
async def charge(m: Money) -> Money:
    """Fails while the payment service is down."""
    CALLS["charge"] = CALLS.get("charge", 0) + 1
    if BROKEN["charge"]:
        raise RuntimeError("payment service is down")
    return Money(cents=m.cents * 2)


@step
async def receipt(m: Money) -> Money:
    """The last step."""
    return m


pay = Workflow("pay", input=Money, output=Money).then(quote).then(charge).then(receipt)


@pytest.fixture(autouse=True)
def _reset() -> None:
    BROKEN["charge"] = True
    CALLS.clear()


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site(workflows=[*WORKFLOWS, note, shape, pay])


async def _failed_run(site: Site) -> str:
    engine = site.bot.engine
    run_id = await engine.start("pay", {"cents": 100}, requester="U0CAROL")
    assert (await engine.wait(run_id, timeout=5)).status is RunStatus.FAILED
    return run_id


async def test_an_admin_retries_a_failed_run_from_its_failed_step(site: Site) -> None:
    run_id = await _failed_run(site)
    admin = await signed_in(site, "U0ADMIN")

    page = await admin.get(f"/runs/{run_id}")
    assert f'action="/runs/{run_id}/retry"' in page.text and ">Retry</button>" in page.text

    BROKEN["charge"] = False
    done = await admin.post(f"/runs/{run_id}/retry", {"csrf": page.csrf})
    assert done.status == 200 and "The run is running again from its failed step." in done.text
    run = await site.bot.engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=5)

    assert run.output == {"cents": 260}
    assert CALLS == {"quote": 1, "charge": 2}
    after = await admin.get(f"/runs/{run_id}")
    assert "Run retried by U0ADMIN from its failed step" in after.text
    assert "RuntimeError: payment service is down" in after.text  # what it had failed with
    assert f'action="/runs/{run_id}/retry"' not in after.text  # completed: no button


async def test_retry_is_for_admins_with_the_csrf_token_and_only_for_failed_runs(
    site: Site,
) -> None:
    run_id = await _failed_run(site)
    requester = await signed_in(site, "U0CAROL")
    admin = await signed_in(site, "U0ADMIN")
    page = await requester.get(f"/runs/{run_id}")
    admin_page = await admin.get(f"/runs/{run_id}")

    assert f'action="/runs/{run_id}/retry"' not in page.text
    refused = await requester.post(f"/runs/{run_id}/retry", {"csrf": page.csrf})
    forged = await admin.post(f"/runs/{run_id}/retry", {"csrf": "x" * 43})
    assert refused.status == 403 and "Only an admin may retry a run." in refused.text
    assert forged.status == 403
    assert (await site.bot.engine.find_run(run_id)).status is RunStatus.FAILED  # type: ignore[union-attr]
    assert CALLS["charge"] == 1

    waiting = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    shown = await admin.get(f"/runs/{waiting}")
    assert f'action="/runs/{waiting}/retry"' not in shown.text
    not_failed = await admin.post(f"/runs/{waiting}/retry", {"csrf": admin_page.csrf})
    missing = await admin.post("/runs/nope/retry", {"csrf": admin_page.csrf})
    assert (
        not_failed.status == 200 and "Not retried: it is suspended, not failed" in not_failed.text
    )
    assert missing.status == 404


async def test_the_workflows_page_counts_exactly_past_a_thousand(site: Site) -> None:
    engine = site.bot.engine
    for first in range(0, 1003, 250):
        batch = [
            engine.start("note", {"text": f"n{n}"}) for n in range(first, min(first + 250, 1003))
        ]
        for run_id in await asyncio.gather(*batch):
            await engine.wait(run_id, timeout=10)
    await _failed_run(site)
    browser = await signed_in(site)

    page = await browser.get("/workflows")

    card = page.text[page.text.index('id="wf-note"') :]
    card = card[: card.index("</article>")]
    assert "completed 1,003" in card and "failed 0" in card and "1000+" not in page.text
    pay_card = page.text[page.text.index('id="wf-pay"') :]
    assert "failed 1<" in pay_card[: pay_card.index("</article>")]


async def test_step_inputs_are_shown_on_linear_paths_and_pointed_at_elsewhere(
    site: Site,
) -> None:
    BROKEN["charge"] = False
    engine = site.bot.engine
    linear = await engine.start("pay", {"cents": 100})
    branched = await engine.start("shape", {"text": "hello"})
    await engine.wait(linear, until=[RunStatus.COMPLETED], timeout=5)
    await engine.wait(branched, until=[RunStatus.COMPLETED], timeout=5)
    browser = await signed_in(site)

    page = (await browser.get(f"/runs/{linear}")).text
    steps = page[page.index('<ol class="steps">') :]
    steps = steps[: steps.index("</ol>")]
    items = steps.split("<li>")[1:]
    assert "<strong>quote</strong>" in items[0] and "the run&#39;s input" in items[0]
    assert "<dd>100</dd>" in items[0] and "<dd>130</dd>" in items[0]  # input, output
    assert "the output of quote" in items[1] and "<dd>130</dd>" in items[1]
    assert "the output of charge" in items[2] and "<dd>260</dd>" in items[2]
    assert "see previous step" not in steps

    other = (await browser.get(f"/runs/{branched}")).text
    other_steps = other[other.index('<ol class="steps">') :]
    other_steps = other_steps[: other_steps.index("</ol>")]
    first, *rest = other_steps.split("<li>")[1:]
    assert "<strong>keep</strong>" in first and "the run&#39;s input" in first
    inner = [
        item for item in rest if "<strong>shout</strong>" in item or "<strong>echo</strong>" in item
    ]
    assert inner and all("see previous step" in item for item in inner)


NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREV = re.compile(r'<a rel="prev" href="([^"]+)"')


async def test_runs_pages_go_older_and_back_newer_with_the_same_pages(site: Site) -> None:
    engine = site.bot.engine
    started = [await engine.start("note", {"text": f"n{n}"}) for n in range(130)]
    browser = await signed_in(site)

    pages: list[list[str]] = []
    path: str | None = "/runs?workflow=note"
    while path is not None:
        page = await browser.get(path)
        pages.append(run_ids(page.text))
        found = NEXT.search(page.text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert [len(p) for p in pages] == [50, 50, 30]
    assert [r for p in pages for r in p] == list(reversed(started))
    assert PREV.search((await browser.get("/runs?workflow=note")).text) is None

    back: list[list[str]] = [run_ids(page.text)]
    while (found := PREV.search(page.text)) is not None:
        page = await browser.get(found.group(1).replace("&amp;", "&"))
        assert "workflow=note" in found.group(1)  # the filters stay
        back.append(run_ids(page.text))
    assert back == list(reversed(pages))
