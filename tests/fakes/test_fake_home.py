"""views.publish and the Home tab rules, through slack-sdk's AsyncWebClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.blockkit import HOME_BLOCKS_MAX, check_home_view
from tests.fakes.slack_api import FakeSlack
from tests.fakes.support import without_proxy


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxy(monkeypatch)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        running.add_user("U0ALICE", name="alice")
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return fake.client()


def _home(n: int = 1, **overrides: Any) -> dict[str, Any]:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"b{i}"}} for i in range(n)]
    return {"type": "home", "callback_id": "signoff_home", "blocks": blocks, **overrides}


async def test_a_published_home_view_is_stored_per_user_and_returned(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    view = View(type="home", blocks=[SectionBlock(text="Your approvals")])

    response = await client.views_publish(user_id="U0ALICE", view=view)

    published = response["view"]
    assert published["type"] == "home"
    assert published["blocks"] == view.to_dict()["blocks"]
    assert published["id"].startswith("V") and published["hash"]
    assert fake.home_view("U0ALICE") == published
    assert fake.home_view("U0BOB") is None
    assert fake.last_call("views.publish").args["user_id"] == "U0ALICE"


async def test_republishing_keeps_the_view_id_and_checks_the_hash(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    first = (await client.views_publish(user_id="U0ALICE", view=_home(1)))["view"]

    second = (await client.views_publish(user_id="U0ALICE", view=_home(2), hash=first["hash"]))[
        "view"
    ]
    with pytest.raises(SlackApiError) as caught:
        await client.views_publish(user_id="U0ALICE", view=_home(3), hash=first["hash"])

    assert second["id"] == first["id"] and second["hash"] != first["hash"]
    assert caught.value.response["error"] == "hash_conflict"
    stored = fake.home_view("U0ALICE")
    assert stored is not None and len(stored["blocks"]) == 2


async def test_an_unknown_user_gets_user_not_found(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.views_publish(user_id="U0NOBODY", view=_home())

    assert caught.value.response["error"] == "user_not_found"


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        pytest.param(_home(HOME_BLOCKS_MAX + 1), "between 1 and 100", id="101-blocks"),
        pytest.param(_home(0), "between 1 and 100", id="no-blocks"),
        pytest.param(_home(type="modal"), 'type must be "home"', id="modal-type"),
        pytest.param(
            _home(title={"type": "plain_text", "text": "Home"}), "title is not allowed", id="title"
        ),
        pytest.param(
            _home(submit={"type": "plain_text", "text": "Go"}), "submit is not allowed", id="submit"
        ),
        pytest.param(_home(private_metadata="x" * 3001), "3000", id="private-metadata"),
        pytest.param(_home(callback_id="x" * 256), "255", id="callback-id"),
    ],
)
async def test_an_invalid_home_view_is_rejected_with_invalid_arguments(
    fake: FakeSlack, client: AsyncWebClient, view: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.views_publish(user_id="U0ALICE", view=view)

    assert caught.value.response["error"] == "invalid_arguments"
    assert any(expected in m for m in caught.value.response["response_metadata"]["messages"])
    assert fake.home_view("U0ALICE") is None
    assert fake.validation_failures[-1].method == "views.publish"


def test_a_home_view_allows_100_blocks_and_no_modal_chrome() -> None:
    assert check_home_view(_home(HOME_BLOCKS_MAX)) == []
    assert check_home_view(_home(private_metadata="x" * 3000)) == []
