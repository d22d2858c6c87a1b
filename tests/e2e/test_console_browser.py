"""The web console in a real browser: Debian's chromium driven by Playwright, against a real
``signoff serve`` process and the fake Slack (with its Sign in with Slack consent page).

The browser is never downloaded: it must be at ``/usr/bin/chromium`` (``apt-get install
chromium``). Without it these tests skip with a reason, unless ``SIGNOFF_REQUIRE_BROWSER=1``
(set by ``.ci/run``) makes that a failure. With ``SIGNOFF_SCREENSHOTS=<folder>`` they save
each page at desktop (1280 px) and phone (375 px) widths, as shown in the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.slack import action_ids
from tests.e2e.test_process import Service
from tests.fakes.signing import block_actions_payload, interactive_body
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.polling import eventually
from tests.support.service import ROOT, service_env
from tests.support.slack_bot import ADMIN, CHANNEL, SECRET, USERS

CHROMIUM = Path("/usr/bin/chromium")
API_TOKEN = "browser-test-api-token"
OIDC_CLIENT, OIDC_SECRET = "7777.8888", "browser-oidc-secret"
WIDTHS = {"desktop": 1280, "phone": 375}

if not CHROMIUM.exists():
    if os.environ.get("SIGNOFF_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"SIGNOFF_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )

from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402
from playwright.async_api import expect as playwright_expect  # noqa: E402

expect: Any = playwright_expect


@pytest.fixture
async def service(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Service]:
    """A real ``python -m bot`` with the console, Sign in with Slack through the fake."""
    for user in USERS:
        fake_slack.add_user(user, name=user.lower(), real_name=f"{user[2:].title()} Example")
    env = service_env(
        api_url=fake_slack.api_url,
        token=fake_slack.token,
        secret=SECRET,
        db=tmp_path / "signoff.db",
        SIGNOFF_WORKFLOWS="tests.e2e.wf_approvals,tests.e2e.wf_console",
        CONSOLE_TEST_FAIL_FLAG=str(tmp_path / "bank-down"),
        SIGNOFF_DEFAULT_CHANNEL=CHANNEL,
        SIGNOFF_ADMINS=ADMIN,
        SIGNOFF_API_TOKEN=API_TOKEN,
        SIGNOFF_WEBHOOK_SECRET=None,
        SIGNOFF_SHUTDOWN_GRACE="2",
        SIGNOFF_OIDC_CLIENT_ID=OIDC_CLIENT,
        SIGNOFF_OIDC_CLIENT_SECRET=OIDC_SECRET,
        SIGNOFF_OIDC_AUTHORIZE_URL=fake_slack.oidc_authorize_url,
        SIGNOFF_SESSION_SECRET="browser-test-session-secret",
    )
    started = await Service.start(env)
    fake_slack.add_oidc_client(
        OIDC_CLIENT, OIDC_SECRET, redirect_uris=[started.url + "/signin/slack/callback"]
    )
    yield started
    if started.proc.returncode is None:
        await started.terminate()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


async def api(service: Service, method: str, path: str, body: Any = None) -> Any:
    """Call the REST API with the bearer token."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, service.url + path, json=body, headers=headers) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def start_run(service: Service, workflow: str, data: dict[str, Any], requester: str) -> str:
    """Start a run through the API and wait until it waits for an answer."""
    created = await api(
        service, "POST", "/api/runs", {"workflow": workflow, "input": data, "requester": requester}
    )
    run_id: str = created["run_id"]

    async def suspended() -> bool:
        return (await api(service, "GET", f"/api/runs/{run_id}"))["status"] == "suspended"

    await eventually(suspended, timeout=10, what=f"{workflow} run to suspend")
    return run_id


async def posted(fake: FakeSlack, run_id: str) -> StoredMessage:
    """The request message of ``run_id`` (its text names the run)."""

    def find() -> StoredMessage | None:
        for call in fake.calls("chat.postMessage"):
            if call.ok and run_id in str(call.args.get("blocks")) and "thread_ts" not in call.args:
                channel, ts = call.response["channel"], call.response["ts"]
                return fake.message(channel, ts)
        return None

    found: StoredMessage = await eventually(find, timeout=10, what="the request message")
    return found


async def sign_in(browser: Browser, service: Service, name: str) -> tuple[BrowserContext, Page]:
    """A new browser profile signed in through the fake Slack's consent page."""
    context = await browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    page = await context.new_page()
    await page.goto(service.url + "/")
    await expect(page).to_have_url(re.compile(r"/signin\?next="))
    await page.get_by_role("link", name="Sign in with Slack").click()
    await page.get_by_role("button", name=f"Sign in to Fake Team as {name}").click()
    await expect(page.get_by_role("heading", name="Waiting for you")).to_be_visible()
    return context, page


async def shoot(page: Page, name: str) -> None:
    """Save the page at both widths when SIGNOFF_SCREENSHOTS names a folder."""
    folder = os.environ.get("SIGNOFF_SCREENSHOTS")
    if not folder:
        return
    target = ROOT / folder if not Path(folder).is_absolute() else Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900 if width > 500 else 800})
        await page.screenshot(path=str(target / f"console-{name}-{label}.png"), full_page=True)
    await page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


async def test_answering_in_the_browser_with_errors_inline_then_the_slack_message_updates(
    service: Service, browser: Browser, fake_slack: FakeSlack
) -> None:
    refund = await start_run(service, "refund", {"customer": "ACME", "amount": 120}, "U0CAROL")
    message = await posted(fake_slack, refund)
    await start_run(service, "change", {"service": "billing", "quorum": 2}, "U0CAROL")

    context, page = await sign_in(browser, service, "u0alice")
    card = page.locator("article", has_text="Approve refund")
    await expect(card).to_contain_text("ACME")
    await expect(page.locator("article", has_text="Approve change")).to_contain_text("0 of 2")
    await shoot(page, "inbox")

    await card.get_by_label("Reason").fill("no")
    await card.get_by_label("Ticket").fill("0")
    await card.get_by_role("button", name="Approve").click()
    card = page.locator("article", has_text="Approve refund")
    await expect(card.locator("#error-reason")).to_have_text("Must be at least 5 characters")
    await expect(card.locator("#error-ticket")).to_have_text("Must be at least 1")
    run = await api(service, "GET", f"/api/runs/{refund}")
    assert run["status"] == "suspended" and run["pending"][0]["responses"] == []

    await card.get_by_label("Reason").fill("double charged")
    await card.get_by_label("Ticket").fill("42")
    await card.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("Approved: “Approve refund”")

    async def completed() -> bool:
        return (await api(service, "GET", f"/api/runs/{refund}"))["status"] == "completed"

    await eventually(completed, timeout=10, what="the run to complete")
    await eventually(
        lambda: any(
            c.ok and c.args.get("ts") == message.ts for c in fake_slack.calls("chat.update")
        ),
        timeout=10,
        what="chat.update of the request message",
    )
    assert "double charged" in str(fake_slack.message(message.channel, message.ts).blocks)

    await page.goto(service.url + f"/runs/{refund}")
    await expect(page.locator("#timeline")).to_contain_text("U0ALICE approved “Approve refund”")
    await shoot(page, "run")
    await page.goto(service.url + "/runs")
    await expect(page.locator("table.runs")).to_contain_text("refund")
    await shoot(page, "runs")
    await page.goto(service.url + "/workflows")
    await expect(page.locator("#wf-refund")).to_contain_text("Approve refund")
    await shoot(page, "workflows")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Signoff")).to_be_visible()
    await shoot(page, "signin")
    await page.goto(service.url + "/runs")
    await expect(page).to_have_url(re.compile(r"/signin\?next=/runs"))
    await context.close()


async def test_someone_not_asked_sees_no_answer_button_and_a_forged_post_changes_nothing(
    service: Service, browser: Browser, fake_slack: FakeSlack
) -> None:
    run_id = await start_run(
        service, "change", {"service": "billing", "approvers": ["U0BOB"]}, "U0CAROL"
    )
    await posted(fake_slack, run_id)
    context, page = await sign_in(browser, service, "u0dave")
    await expect(page.locator("main")).to_contain_text("Nothing is waiting for you")

    await page.goto(service.url + f"/runs/{run_id}")
    await expect(page.locator("article", has_text="Approve change")).to_be_visible()
    assert await page.get_by_role("button", name="Approve").count() == 0
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf
    interrupt_id = (await api(service, "GET", f"/api/runs/{run_id}"))["pending"][0]["id"]
    answer = {"interrupt_id": interrupt_id, "_decision": "approve", "next": "/"}

    forged = await page.request.post(
        f"{service.url}/runs/{run_id}/answer", form={**answer, "csrf": csrf}, max_redirects=0
    )
    no_csrf = await page.request.post(
        f"{service.url}/runs/{run_id}/answer", form=answer, max_redirects=0
    )

    assert forged.status == 403 and no_csrf.status == 403
    run = await api(service, "GET", f"/api/runs/{run_id}")
    assert run["status"] == "suspended" and run["pending"][0]["responses"] == []
    await context.close()


async def test_the_run_page_follows_a_slack_click_live_without_a_reload(
    service: Service, browser: Browser, fake_slack: FakeSlack
) -> None:
    run_id = await start_run(service, "change", {"service": "billing"}, "U0CAROL")
    message = await posted(fake_slack, run_id)
    context, page = await sign_in(browser, service, "u0alice")
    await page.goto(service.url + f"/runs/{run_id}")
    await expect(page.locator("#run-status")).to_have_text("suspended")
    await page.evaluate("window.notReloaded = true")

    click = block_actions_payload(
        message=message.to_api(), action_id=action_ids.APPROVE, channel_id=message.channel,
        user_id="U0BOB", user_name="u0bob",
    )  # fmt: skip
    assert (await service.send(interactive_body(click)))[0] == 200

    await expect(page.locator("#timeline")).to_contain_text(
        "U0BOB approved “Approve change”", timeout=10_000
    )
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=10_000)
    await expect(page.locator("#timeline")).to_contain_text("Run completed")
    assert await page.evaluate("window.notReloaded") is True
    assert await page.get_by_role("button", name="Approve").count() == 0
    await context.close()


async def test_an_admin_retries_a_failed_run_and_sees_each_step_input(
    service: Service, browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "bank-down").touch()
    created = await api(
        service,
        "POST",
        "/api/runs",
        {"workflow": "payout", "input": {"vendor": "ACME", "cents": 1000}, "requester": "U0CAROL"},
    )
    run_id = created["run_id"]

    async def failed() -> bool:
        return (await api(service, "GET", f"/api/runs/{run_id}"))["status"] == "failed"

    await eventually(failed, timeout=10, what="the payout to fail")
    context, page = await sign_in(browser, service, "u0admin")
    await page.goto(service.url + f"/runs/{run_id}")
    await expect(page.locator("#run-status")).to_have_text("failed")
    steps = page.locator("ol.steps > li")
    await expect(steps.nth(0)).to_contain_text("the run's input")
    await expect(steps.nth(1)).to_contain_text("ConnectionError: the bank's API is down (503)")
    await expect(steps.nth(1)).to_contain_text("the output of add_fee")
    await shoot(page, "run-failed")

    (tmp_path / "bank-down").unlink()
    await page.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_contain_text("running again from its failed step")
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=10_000)
    await expect(page.locator("#timeline")).to_contain_text("Run retried by U0ADMIN")
    await expect(page.locator("#timeline")).to_contain_text("Run completed")
    assert await page.get_by_role("button", name="Retry").count() == 0
    await expect(page.locator("ol.steps > li").nth(2)).to_contain_text("the output of send_to_bank")
    run = await api(service, "GET", f"/api/runs/{run_id}")
    assert run["output"] == {"vendor": "ACME", "cents": 1030}
    await expect(page.get_by_text("Cancel this run")).to_have_count(0)  # finished: gone live
    await page.wait_for_timeout(1600)  # let the new entries' highlight fade
    await shoot(page, "run-retried")
    await context.close()

    others, other_page = await sign_in(browser, service, "u0carol")
    await other_page.goto(service.url + f"/runs/{run_id}")
    assert await other_page.get_by_role("button", name="Retry").count() == 0
    await others.close()


async def test_runs_page_on_a_phone_filters_by_date_and_pages_both_ways(
    service: Service, browser: Browser
) -> None:
    for n in range(55):
        await api(
            service,
            "POST",
            "/api/runs",
            {"workflow": "payout", "input": {"vendor": f"v{n}", "cents": n}, "requester": "U0BOB"},
        )
    context, page = await sign_in(browser, service, "u0alice")
    await page.set_viewport_size({"width": WIDTHS["phone"], "height": 800})
    await page.goto(service.url + "/runs")
    since = page.get_by_label("From")
    box = await since.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTHS["phone"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
    today = await page.evaluate("new Date().toISOString().slice(0, 10)")
    await since.fill(today)
    await page.get_by_label("To").fill(today)
    await page.get_by_label("Workflow").select_option("payout")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(rf"since={today}&until={today}"))
    await expect(page.locator("table.runs tbody tr")).to_have_count(50)

    await page.get_by_role("link", name="Older →").click()
    await expect(page.locator("table.runs tbody tr")).to_have_count(5)
    await expect(page).to_have_url(re.compile(rf"since={today}"))
    await shoot(page, "runs-filtered")
    await page.set_viewport_size({"width": WIDTHS["phone"], "height": 800})
    await page.get_by_role("link", name="← Newer").click()
    await expect(page.locator("table.runs tbody tr")).to_have_count(50)
    assert await page.get_by_role("link", name="← Newer").count() == 0
    await context.close()
