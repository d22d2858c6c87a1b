"""Sign in with Slack against the fake: slack-sdk's URL generator and Web API methods, and a
browser-like aiohttp session that follows the redirects to a real callback server."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth import OpenIDConnectAuthorizeUrlGenerator
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.oidc import ISSUER, decode_jwt
from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy

# slack-sdk sends the client credentials with aiohttp.BasicAuth, which aiohttp 3.14 deprecates;
# the suite turns warnings into errors, so product tests of openid_connect_token need this too.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

CLIENT_ID, SECRET = "1111.2222", "s3cret"
SCOPES = ["openid", "profile", "email"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)


@pytest.fixture
async def callback() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A relying party's redirect endpoint: its URL and the queries it received."""
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(dict(request.query))
        return web.Response(text="signed in")

    app = web.Application()
    app.router.add_get("/slack/callback", handle)
    server = TestServer(app, host="127.0.0.1", port=None)
    await server.start_server()
    yield str(server.make_url("/slack/callback")), received
    await server.close()


@pytest.fixture
async def fake(callback: tuple[str, list[dict[str, str]]]) -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        running.add_user("U0ALICE", name="alice", real_name="Alice Smith", email="a@corp.test")
        running.add_user("U0BOB", name="bob")
        running.add_oidc_client(CLIENT_ID, SECRET, redirect_uris=[callback[0]])
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _authorize_url(fake: FakeSlack, redirect_uri: str, **kwargs: Any) -> str:
    generator = OpenIDConnectAuthorizeUrlGenerator(
        client_id=kwargs.pop("client_id", CLIENT_ID),
        redirect_uri=redirect_uri,
        scopes=kwargs.pop("scopes", SCOPES),
        authorization_url=fake.oidc_authorize_url,
    )
    return generator.generate(state="st-1", nonce="n-1", **kwargs)


def _form(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The consent form's hidden fields, and its buttons by label."""
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    buttons = re.findall(r'<button type="submit" name="([^"]+)" value="([^"]*)">([^<]*)<', page)
    return (
        {k: html.unescape(v) for k, v in hidden},
        {html.unescape(label): f"{name}={value}" for name, value, label in buttons},
    )


async def _click(
    browser: aiohttp.ClientSession, fake: FakeSlack, url: str, label: str
) -> aiohttp.ClientResponse:
    async with browser.get(url) as page:
        assert page.status == 200
        fields, buttons = _form(await page.text())
    name, value = buttons[label].split("=", 1)
    async with browser.post(fake.oidc_authorize_url, data={**fields, name: value}) as response:
        await response.read()
        return response


async def _code(browser: aiohttp.ClientSession, fake: FakeSlack, redirect_uri: str) -> str:
    fake.oidc_auto_login("U0ALICE")
    async with browser.get(_authorize_url(fake, redirect_uri)) as response:
        assert response.status == 200
    return parse_qs(urlsplit(str(response.url)).query)["code"][0]


async def test_sign_in_through_the_consent_page_then_token_and_user_info(
    fake: FakeSlack,
    browser: aiohttp.ClientSession,
    callback: tuple[str, list[dict[str, str]]],
) -> None:
    redirect_uri, received = callback

    landed = await _click(
        browser, fake, _authorize_url(fake, redirect_uri), "Sign in to Fake Team as alice"
    )
    assert landed.status == 200 and str(landed.url).startswith(redirect_uri)
    [query] = received
    assert query["state"] == "st-1"
    api = AsyncWebClient(base_url=fake.api_url)
    token = await api.openid_connect_token(
        client_id=CLIENT_ID, client_secret=SECRET, code=query["code"], redirect_uri=redirect_uri
    )
    info = await AsyncWebClient(
        token=token["access_token"], base_url=fake.api_url
    ).openid_connect_userInfo()

    assert token["ok"] and token["token_type"] == "Bearer"
    claims = decode_jwt(token["id_token"], SECRET)
    assert (claims["iss"], claims["sub"], claims["aud"], claims["nonce"]) == (
        ISSUER,
        "U0ALICE",
        CLIENT_ID,
        "n-1",
    )
    assert claims["exp"] > claims["iat"]
    assert claims["https://slack.com/user_id"] == "U0ALICE"
    assert claims["https://slack.com/team_id"] == fake.state.team_id
    assert (claims["name"], claims["given_name"], claims["email"]) == (
        "Alice Smith",
        "Alice",
        "a@corp.test",
    )
    assert claims["picture"].startswith("https://")
    assert info["sub"] == "U0ALICE" and info["email_verified"] is True
    assert info["family_name"] == "Smith"
    assert info["https://slack.com/team_name"] == fake.state.team
    assert info["https://slack.com/team_domain"] == "fake-team"
    with pytest.raises(ValueError):
        decode_jwt(token["id_token"], "another-secret")


async def test_the_consent_page_lists_people_not_bots(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    async with browser.get(_authorize_url(fake, callback[0])) as page:
        _, buttons = _form(await page.text())

    assert sorted(buttons) == [
        "Cancel",
        "Sign in to Fake Team as alice",
        "Sign in to Fake Team as bob",
    ]


async def test_cancel_redirects_with_access_denied(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    await _click(browser, fake, _authorize_url(fake, callback[0]), "Cancel")

    assert callback[1] == [{"error": "access_denied", "state": "st-1"}]


async def test_login_hint_and_auto_login_redirect_at_once(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    hinted = _authorize_url(fake, callback[0]) + "&login_hint=U0BOB"
    async with browser.get(hinted, allow_redirects=False) as response:
        assert response.status == 302
    fake.oidc_auto_login("U0ALICE")
    async with browser.get(_authorize_url(fake, callback[0])) as response:
        assert response.status == 200

    assert [q["state"] for q in callback[1]] == ["st-1"]
    users = sorted(g.user_id for g in fake.oidc.codes.values())
    assert users == ["U0ALICE", "U0BOB"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"client_id": "9999.0"}, "invalid_client_id", id="unknown-client"),
        pytest.param({"redirect_uri": "https://evil.example/cb"}, "bad_redirect_uri", id="uri"),
    ],
)
async def test_an_unknown_client_or_redirect_uri_gets_a_400_page_and_no_redirect(
    fake: FakeSlack,
    browser: aiohttp.ClientSession,
    callback: tuple[str, list[dict[str, str]]],
    change: dict[str, str],
    error: str,
) -> None:
    url = _authorize_url(
        fake, change.get("redirect_uri", callback[0]), client_id=change.get("client_id", CLIENT_ID)
    )
    async with browser.get(url, allow_redirects=False) as response:
        body = await response.text()

    assert response.status == 400 and "Location" not in response.headers
    assert error in body
    assert callback[1] == []


async def test_a_request_without_the_openid_scope_is_refused_by_redirect(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    async with browser.get(_authorize_url(fake, callback[0], scopes=["profile"])) as response:
        assert response.status == 200

    assert callback[1] == [{"error": "invalid_scope", "state": "st-1"}]


async def test_a_code_is_single_use(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    code = await _code(browser, fake, callback[0])
    api = AsyncWebClient(base_url=fake.api_url)
    await api.openid_connect_token(client_id=CLIENT_ID, client_secret=SECRET, code=code)

    with pytest.raises(SlackApiError) as caught:
        await api.openid_connect_token(client_id=CLIENT_ID, client_secret=SECRET, code=code)

    assert caught.value.response["error"] == "invalid_code"


async def test_a_code_expires_after_ten_minutes(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    code = await _code(browser, fake, callback[0])
    fake.oidc.advance(601)

    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(base_url=fake.api_url).openid_connect_token(
            client_id=CLIENT_ID, client_secret=SECRET, code=code
        )

    assert caught.value.response["error"] == "invalid_code"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"client_id": "9999.0"}, "invalid_client_id", id="unknown-client"),
        pytest.param({"client_secret": "wrong"}, "bad_client_secret", id="wrong-secret"),
        pytest.param({"client_id": "3333.4444"}, "invalid_code", id="other-clients-code"),
        pytest.param({"redirect_uri": "http://127.0.0.1:1/x"}, "bad_redirect_uri", id="uri"),
        pytest.param({"code": "123.abc"}, "invalid_code", id="made-up-code"),
    ],
)
async def test_token_exchange_errors(
    fake: FakeSlack,
    browser: aiohttp.ClientSession,
    callback: tuple[str, list[dict[str, str]]],
    kwargs: dict[str, str],
    error: str,
) -> None:
    fake.add_oidc_client("3333.4444", "other-secret", redirect_uris=[callback[0]])
    code = await _code(browser, fake, callback[0])
    args = {"client_id": CLIENT_ID, "client_secret": SECRET, "code": code, **kwargs}
    if kwargs.get("client_id") == "3333.4444":
        args["client_secret"] = "other-secret"

    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(base_url=fake.api_url).openid_connect_token(**args)

    assert caught.value.response["error"] == error
    # The failed attempt did not spend the code.
    ok = await AsyncWebClient(base_url=fake.api_url).openid_connect_token(
        client_id=CLIENT_ID, client_secret=SECRET, code=code
    )
    assert ok["ok"]


async def test_user_info_needs_a_sign_in_token_and_that_token_cannot_post(
    fake: FakeSlack, browser: aiohttp.ClientSession, callback: tuple[str, list[dict[str, str]]]
) -> None:
    code = await _code(browser, fake, callback[0])
    token = await AsyncWebClient(base_url=fake.api_url).openid_connect_token(
        client_id=CLIENT_ID, client_secret=SECRET, code=code
    )
    user = AsyncWebClient(token=token["access_token"], base_url=fake.api_url)

    with pytest.raises(SlackApiError) as bad:
        await AsyncWebClient(token="xoxp-nope", base_url=fake.api_url).openid_connect_userInfo()
    with pytest.raises(SlackApiError) as post:
        await user.chat_postMessage(channel="C0APPROVALS", text="hi")

    assert bad.value.response["error"] == "invalid_auth"
    assert post.value.response["error"] == "missing_scope"
