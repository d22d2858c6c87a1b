"""Who may use the console: sign-in (Slack OIDC, one-time link, API token), sessions, CSRF."""

from __future__ import annotations

import pytest

from engine import InterruptStatus
from tests.fakes.slack_api import FakeSlack
from tests.support.console import Site, SiteFactory
from tests.support.polling import eventually

# slack-sdk sends the OIDC client credentials with aiohttp.BasicAuth, deprecated in 3.14.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()


@pytest.mark.parametrize("path", ["/", "/runs", "/runs/abc", "/workflows", "/runs?status=failed"])
async def test_every_page_needs_a_session(site: Site, path: str) -> None:
    browser = await site.browser()

    page = await browser.get(path, allow_redirects=False)

    assert page.status == 302
    async with browser.http.get(site.url + path, allow_redirects=False) as response:
        assert response.headers["Location"].startswith("/signin?next=")


async def test_only_health_metrics_and_the_sign_in_page_are_open(site: Site) -> None:
    browser = await site.browser()

    assert (await browser.get("/healthz")).status == 200
    assert (await browser.get("/metrics")).status == 200
    assert (await browser.get("/signin")).status == 200
    assert (await browser.get("/runs/x/events")).status == 401
    assert (await browser.get("/runs/x/live")).status == 401


async def test_sign_in_with_slack_makes_the_web_user_the_same_slack_user(site: Site) -> None:
    browser = await site.browser()

    page = await browser.sign_in("U0ALICE")

    assert page.status == 200 and page.url == site.url + "/"
    assert "Waiting for you" in page.text and 'title="U0ALICE"' in page.text
    cookie = next(c for c in browser.http.cookie_jar if c.key == "signoff_session")
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert "U0ALICE" not in cookie.value  # encrypted


async def test_sign_in_returns_to_the_page_asked_for(site: Site) -> None:
    browser = await site.browser()
    await browser.get("/workflows")  # -> /signin?next=/workflows
    site.bot.fake.oidc_auto_login("U0BOB")

    page = await browser.get("/signin/slack?next=/workflows")

    assert page.url == site.url + "/workflows" and "Workflows" in page.text


async def test_a_callback_with_another_state_is_refused(site: Site) -> None:
    browser = await site.browser()
    async with browser.http.get(site.url + "/signin/slack", allow_redirects=False) as begun:
        to_slack = begun.headers["Location"]
    site.bot.fake.oidc_auto_login("U0ALICE")
    async with browser.http.get(to_slack, allow_redirects=False) as granted:
        code = granted.headers["Location"].split("code=")[1].split("&")[0]

    page = await browser.get(f"/signin/slack/callback?code={code}&state=forged")

    assert page.status == 403 and "stale or was not started here" in page.text
    assert (await browser.get("/", allow_redirects=False)).status == 302


async def test_a_code_issued_for_another_sign_in_fails_the_nonce_check(site: Site) -> None:
    fake: FakeSlack = site.bot.fake
    browser = await site.browser()
    # First attempt: Slack grants a code bound to nonce #1; the browser never comes back.
    async with browser.http.get(site.url + "/signin/slack", allow_redirects=False) as first:
        to_slack = first.headers["Location"]
    fake.oidc_auto_login("U0ALICE")
    async with browser.http.get(to_slack, allow_redirects=False) as granted:
        stolen_code = granted.headers["Location"].split("code=")[1].split("&")[0]
    # Second attempt: new state and nonce in the session; the old code is slipped in.
    async with browser.http.get(site.url + "/signin/slack", allow_redirects=False) as second:
        state = second.headers["Location"].split("state=")[1].split("&")[0]

    page = await browser.get(f"/signin/slack/callback?code={stolen_code}&state={state}")

    assert page.status == 403 and "nonce" in page.text
    assert (await browser.get("/", allow_redirects=False)).status == 302


async def test_a_user_of_another_workspace_is_refused(site: Site) -> None:
    fake = site.bot.fake

    async def other_workspace(args: dict[str, object]) -> dict[str, object]:
        return {"ok": True, "team_id": "T0OTHER", "user_id": "U0BOT", "team": "Other"}

    fake.add_method("auth.test", other_workspace)
    browser = await site.browser()

    page = await browser.sign_in("U0ALICE")

    assert page.status == 403 and "another Slack workspace" in page.text
    assert (await browser.get("/", allow_redirects=False)).status == 302


async def test_slack_saying_no_is_shown_and_signs_nobody_in(site: Site) -> None:
    browser = await site.browser()
    async with browser.http.get(site.url + "/signin/slack", allow_redirects=False) as first:
        state = first.headers["Location"].split("state=")[1].split("&")[0]

    page = await browser.get(f"/signin/slack/callback?error=access_denied&state={state}")

    assert page.status == 403 and "access_denied" in page.text


async def test_sign_out_ends_the_session(site: Site) -> None:
    browser = await site.browser()
    page = await browser.sign_in("U0ALICE")

    out = await browser.post("/signout", {"csrf": page.csrf})

    assert out.url.endswith("/signin")
    assert (await browser.get("/", allow_redirects=False)).status == 302


async def test_sign_out_without_the_csrf_token_is_refused(site: Site) -> None:
    browser = await site.browser()
    await browser.sign_in("U0ALICE")

    assert (await browser.post("/signout", {})).status == 403
    assert (await browser.get("/", allow_redirects=False)).status == 200


async def test_the_operator_link_works_once(make_site: SiteFactory) -> None:
    site = await make_site(oidc=False)
    assert site.console.links is not None
    token = site.console.links.issue()
    first, second = await site.browser(), await site.browser()

    signed_in = await first.get(f"/signin/link?token={token}")
    again = await second.get(f"/signin/link?token={token}")

    assert signed_in.status == 200 and 'title="operator"' in signed_in.text
    assert again.status == 403 and "already used" in again.text
    assert (await second.get("/", allow_redirects=False)).status == 302


async def test_the_operator_link_expires(make_site: SiteFactory) -> None:
    site = await make_site(oidc=False, SIGNOFF_OPERATOR_LINK_MINUTES="5")
    links = site.console.links
    assert links is not None
    now = [1000.0]
    links.clock = lambda: now[0]
    token = links.issue()
    now[0] += 5 * 60 + 1

    page = await (await site.browser()).get(f"/signin/link?token={token}")

    assert page.status == 403


async def test_without_slack_sign_in_the_api_token_signs_the_operator_in(
    make_site: SiteFactory,
) -> None:
    site = await make_site(
        oidc=False, SIGNOFF_API_TOKEN="the-api-token", SIGNOFF_OPERATOR_NAME="ops-jane"
    )
    browser = await site.browser()
    csrf = await browser.csrf()

    wrong = await browser.post("/signin/token", {"csrf": csrf, "token": "guess"})
    no_csrf = await browser.post("/signin/token", {"token": "the-api-token"})
    right = await browser.post("/signin/token", {"csrf": csrf, "token": "the-api-token"})

    assert wrong.status == 403 and no_csrf.status == 403
    assert right.status == 200 and 'title="ops-jane"' in right.text


async def test_with_slack_sign_in_the_token_form_is_not_offered(site: Site) -> None:
    page = await (await site.browser()).get("/signin")

    assert "Sign in with Slack" in page.text and 'name="token"' not in page.text


async def test_an_answer_without_the_csrf_token_is_refused_and_changes_nothing(
    site: Site,
) -> None:
    run_id = await site.bot.start("change", {"service": "billing"})
    interrupt = await site.bot.interrupt(run_id)
    browser = await site.browser()
    await browser.sign_in("U0ALICE")

    page = await browser.post(
        f"/runs/{run_id}/answer", {"interrupt_id": interrupt.id, "_decision": "approve"}
    )
    wrong = await browser.post(
        f"/runs/{run_id}/answer",
        {"interrupt_id": interrupt.id, "_decision": "approve", "csrf": "x" * 43},
    )

    assert page.status == 403 and wrong.status == 403
    after = await site.bot.interrupt(run_id)
    assert after.status is InterruptStatus.PENDING and after.responses == []


async def test_a_forged_answer_from_someone_not_asked_is_refused_and_changes_nothing(
    site: Site,
) -> None:
    run_id = await site.bot.start("change", {"service": "billing", "approvers": ["U0BOB"]})
    interrupt = await site.bot.interrupt(run_id)
    browser = await site.browser()
    inbox = await browser.sign_in("U0DAVE")

    assert "Approve change" not in inbox.text  # nothing offered to answer
    detail = await browser.get(f"/runs/{run_id}")
    assert detail.status == 200 and "Approve change" in detail.text
    assert 'value="approve"' not in detail.text  # shown, but no answer form
    page = await browser.post(
        f"/runs/{run_id}/answer",
        {"csrf": inbox.csrf, "interrupt_id": interrupt.id, "_decision": "approve"},
    )

    assert page.status == 403 and "Only U0BOB may respond" in page.text
    after = await site.bot.interrupt(run_id)
    assert after.status is InterruptStatus.PENDING and after.responses == []


async def test_the_requester_is_not_offered_their_own_request(site: Site) -> None:
    run_id = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    interrupt = await site.bot.interrupt(run_id)
    browser = await site.browser()
    inbox = await browser.sign_in("U0CAROL")

    page = await browser.post(
        f"/runs/{run_id}/answer",
        {"csrf": inbox.csrf, "interrupt_id": interrupt.id, "_decision": "approve"},
    )

    assert "Approve change" not in inbox.text
    assert page.status == 403 and "can&#39;t respond to it yourself" in page.text
    assert (await site.bot.interrupt(run_id)).responses == []


async def test_answering_on_the_web_resumes_the_run_and_updates_the_slack_message(
    site: Site,
) -> None:
    run_id = await site.bot.start("change", {"service": "billing"})
    message = await site.bot.message(run_id)
    interrupt = await site.bot.interrupt(run_id)
    browser = await site.browser()
    inbox = await browser.sign_in("U0ALICE")
    assert "Approve change" in inbox.text and "billing" in inbox.text

    page = await browser.post(
        f"/runs/{run_id}/answer",
        {
            "csrf": inbox.csrf,
            "interrupt_id": interrupt.id,
            "next": "/",
            "comment": "ship it",
            "_decision": "approve",
        },
    )

    assert page.status == 200 and "Approved: “Approve change”" in page.text
    run = await site.bot.finished(run_id)
    assert run.output["approved_by"] == "U0ALICE" and run.output["comment"] == "ship it"
    await eventually(
        lambda: any(
            c.args.get("ts") == message.ts for c in site.bot.fake.calls("chat.update") if c.ok
        ),
        what="chat.update of the request message",
    )


async def test_a_stale_form_says_who_decided_and_when(site: Site) -> None:
    run_id = await site.bot.start("change", {"service": "billing"})
    interrupt = await site.bot.interrupt(run_id)
    alice, bob = await site.browser(), await site.browser()
    alice_page, bob_page = await alice.sign_in("U0ALICE"), await bob.sign_in("U0BOB")
    form = {"interrupt_id": interrupt.id, "next": "/", "_decision": "approve"}

    first = await alice.post(f"/runs/{run_id}/answer", {**form, "csrf": alice_page.csrf})
    late = await bob.post(f"/runs/{run_id}/answer", {**form, "csrf": bob_page.csrf})

    assert first.status == 200
    assert late.status == 409
    assert "Already decided (approved) by U0ALICE at " in late.text
    (resolved,) = (await site.bot.engine.get_run(run_id)).interrupts
    assert [r.actor for r in resolved.responses] == ["U0ALICE"]


async def test_invalid_answers_are_shown_inline_with_the_slack_modal_messages(
    site: Site,
) -> None:
    run_id = await site.bot.start("refund", {"customer": "ACME", "amount": 120})
    interrupt = await site.bot.interrupt(run_id)
    browser = await site.browser()
    inbox = await browser.sign_in("U0ALICE")
    form = {"csrf": inbox.csrf, "interrupt_id": interrupt.id, "next": "/"}

    invalid = await browser.post(
        f"/runs/{run_id}/answer", {**form, "reason": "no", "ticket": "0", "_decision": "approve"}
    )

    assert invalid.status == 422
    # The very messages the Slack modal shows (tests/e2e/test_approval_flow.py).
    assert '<p class="error" id="error-reason">Must be at least 5 characters</p>' in invalid.text
    assert '<p class="error" id="error-ticket">Must be at least 1</p>' in invalid.text
    assert ">no</textarea>" in invalid.text  # what was typed is kept
    assert (await site.bot.interrupt(run_id)).responses == []

    fixed = await browser.post(
        f"/runs/{run_id}/answer",
        {**form, "reason": "double charged", "ticket": "42", "_decision": "approve"},
    )
    assert fixed.status == 200
    run = await site.bot.finished(run_id)
    assert run.output == {"customer": "ACME", "approved": True, "reason": "double charged",
                          "ticket": 42}  # fmt: skip


async def test_cancel_is_for_the_requester_or_an_admin(site: Site) -> None:
    run_id = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    other, requester = await site.browser(), await site.browser()
    other_page = await other.sign_in("U0DAVE")
    requester_page = await requester.sign_in("U0CAROL")

    assert 'action="/runs/' + run_id + '/cancel"' not in (await other.get(f"/runs/{run_id}")).text
    refused = await other.post(f"/runs/{run_id}/cancel", {"csrf": other_page.csrf})
    assert refused.status == 403
    assert not (await site.bot.engine.get_run(run_id)).run.status.terminal

    done = await requester.post(
        f"/runs/{run_id}/cancel", {"csrf": requester_page.csrf, "reason": "not needed"}
    )
    assert done.status == 200 and "The run is cancelled." in done.text
    assert "Run cancelled by U0CAROL: not needed" in done.text
    assert (await site.bot.engine.get_run(run_id)).run.status.value == "cancelled"


async def test_an_admin_may_cancel_any_run(site: Site) -> None:
    run_id = await site.bot.start("change", {"service": "billing"}, requester="U0CAROL")
    admin = await site.browser()
    page = await admin.sign_in("U0ADMIN")

    done = await admin.post(f"/runs/{run_id}/cancel", {"csrf": page.csrf})

    assert done.status == 200
    assert (await site.bot.engine.get_run(run_id)).run.status.value == "cancelled"
