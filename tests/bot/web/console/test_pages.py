"""The console's pages: runs (filters, keyset paging), run detail, workflows, live updates."""

from __future__ import annotations

import asyncio
import re

import pytest
from pydantic import BaseModel

from bot.slack import action_ids
from engine import RunStatus, Workflow, step
from tests.e2e.wf_approvals import WORKFLOWS
from tests.support.console import Browser, Site, SiteFactory

pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

RUN_LINK = re.compile(r'href="/runs/([0-9a-f]{32})"')


class Note(BaseModel):
    """A tiny input."""

    text: str


@step
async def keep(note: Note) -> Note:
    """Finish at once."""
    return note


@step
async def shout(note: Note) -> Note:
    """Another step, for the graph."""
    return Note(text=note.text.upper())


@step
async def whisper(note: Note) -> Note:
    """The other branch."""
    return Note(text=note.text.lower())


@step
async def echo(note: Note) -> Note:
    """The sub-workflow's step."""
    return note


def _long(note: Note) -> bool:
    return len(note.text) > 3


note = Workflow("note", input=Note, output=Note).then(keep)
shape = (
    Workflow("shape", input=Note, output=Note)
    .then(keep)
    .branch((_long, shout), otherwise=whisper)
    .then(Workflow("inner", input=Note, output=Note).then(echo))
)


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site(workflows=[*WORKFLOWS, note, shape])


async def signed_in(site: Site, user: str = "U0ALICE") -> Browser:
    browser = await site.browser()
    await browser.sign_in(user)
    return browser


def run_ids(page_text: str) -> list[str]:
    return list(dict.fromkeys(RUN_LINK.findall(page_text)))


async def test_runs_pages_walk_every_run_once_newest_first(site: Site) -> None:
    engine = site.bot.engine
    started = [await engine.start("note", {"text": f"n{n}"}) for n in range(120)]
    browser = await signed_in(site)

    seen: list[str] = []
    path: str | None = "/runs?workflow=note"
    while path is not None:
        page = await browser.get(path)
        assert page.status == 200
        seen += run_ids(page.text)
        found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
        path = found.group(1).replace("&amp;", "&") if found else None

    assert seen == list(reversed(started))


async def test_runs_filter_by_status_workflow_requester_and_date(site: Site) -> None:
    engine = site.bot.engine
    mine = await engine.start("note", {"text": "a"}, requester="U0CAROL")
    theirs = await engine.start("note", {"text": "b"}, requester="U0DAVE")
    waiting = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    await engine.wait(mine, until=[RunStatus.COMPLETED], timeout=5)
    await engine.wait(theirs, until=[RunStatus.COMPLETED], timeout=5)
    browser = await signed_in(site)
    created = (await engine.get_run(mine)).run.created_at.date()

    by_requester = run_ids((await browser.get("/runs?requester=U0CAROL")).text)
    by_status = run_ids((await browser.get("/runs?status=suspended")).text)
    both = run_ids((await browser.get("/runs?requester=U0CAROL&workflow=note")).text)
    today = run_ids((await browser.get(f"/runs?since={created}&until={created}")).text)
    before = run_ids((await browser.get("/runs?until=2000-01-01")).text)
    bad = await browser.get("/runs?status=nope&since=yesterday&before=garbage")

    assert by_requester == [waiting, mine]
    assert by_status == [waiting]
    assert both == [mine]
    assert set(today) == {mine, theirs, waiting}
    assert before == []
    assert bad.status == 200 and "unknown status" in bad.text and "is not a date" in bad.text


async def test_the_run_page_has_the_timeline_steps_and_a_link_to_slack(site: Site) -> None:
    run_id = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    message = await site.bot.message(run_id)
    browser = await signed_in(site)

    page = await browser.get(f"/runs/{run_id}")

    assert page.status == 200
    assert "Run started by U0CAROL (workflow change v1)" in page.text
    assert "Waiting for an answer to “Approve change” from anyone" in page.text
    ts = message.ts.replace(".", "")
    assert f'href="https://slack.com/archives/{message.channel}/p{ts}"' in page.text
    assert 'value="approve"' in page.text  # U0ALICE may answer here too

    await site.bot.click(message, action_ids.APPROVE, user="U0BOB")
    await site.bot.finished(run_id)
    done = await browser.get(f"/runs/{run_id}")
    assert "U0BOB approved “Approve change”" in done.text
    assert "Run completed" in done.text and "Approved by" in done.text
    assert "approve_change" in done.text  # the step, with its output
    assert "Slack message" in done.text


async def test_an_unknown_run_is_a_404_page(site: Site) -> None:
    browser = await signed_in(site)

    page = await browser.get("/runs/nope")

    assert page.status == 404 and "There is no run nope" in page.text


async def test_the_live_stream_needs_a_session_and_sends_the_history(site: Site) -> None:
    run_id = await site.bot.start("note", {"text": "x"})
    await site.bot.finished(run_id)
    browser = await signed_in(site)

    async with browser.http.get(f"{site.url}/runs/{run_id}/events") as response:
        body = await asyncio.wait_for(response.text(), 5)

    assert response.headers["Content-Type"] == "text/event-stream"
    assert "event: started" in body and "event: completed" in body
    assert 'event: end\ndata: {"status": "completed"}' in body
    fragment = await browser.get(f"/runs/{run_id}/live")
    assert fragment.status == 200 and 'data-live="timeline"' in fragment.text
    assert "<html" not in fragment.text


async def test_the_workflows_page_draws_each_graph_with_schemas_and_counts(site: Site) -> None:
    await site.bot.finished(await site.bot.engine.start("note", {"text": "x"}))
    browser = await signed_in(site)

    page = await browser.get("/workflows")

    assert page.status == 200
    card = page.text[page.text.index('id="wf-shape"') :]
    card = card[: card.index("</article>")]
    assert "Branch branch" in card and "when _long" in card and "otherwise" in card
    assert "Sub-workflow inner" in card
    assert card.index(">keep<") < card.index("Branch branch") < card.index("Sub-workflow inner")
    note_card = page.text[page.text.index('id="wf-note"') :]
    assert "completed 1" in note_card[: note_card.index("</article>")]
    refund = page.text[page.text.index('id="wf-refund"') :]
    assert "Asks (resume)" in refund and "&#34;minLength&#34;: 5" in refund
