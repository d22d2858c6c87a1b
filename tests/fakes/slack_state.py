"""The workspace a ``FakeSlack`` pretends to be: users, groups, messages, views, triggers."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "SlackState", "StoredMessage"]

_CONVERSATION_ID = re.compile(r"^[CDG][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
MODAL_STACK_MAX = 3
CONVERSATION_USERS_MAX = 8


class ApiError(Exception):
    """Raised inside a fake method to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


@dataclass
class StoredMessage:
    """A message as the fake holds it; ``edits`` keeps earlier versions, oldest first."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]]
    user: str
    bot_id: str
    app_id: str
    team: str
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    # time.monotonic() (the clock of Call.received_at) when posted and when last changed.
    posted_at: float = field(default_factory=time.monotonic)
    settled_at: float = field(default_factory=time.monotonic)

    def to_api(self) -> dict[str, Any]:
        """The message object Slack returns in chat.postMessage / chat.update responses."""
        message: dict[str, Any] = {
            "type": "message",
            "text": self.text or "",
            "user": self.user,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team,
            "ts": self.ts,
            "blocks": self.blocks,
        }
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.metadata:
            message["metadata"] = self.metadata
        return message


class SlackState:
    """Mutable workspace state behind the fake's methods. Methods raise ``ApiError``."""

    def __init__(
        self,
        *,
        team_id: str,
        team: str,
        bot_user_id: str,
        bot_id: str,
        app_id: str,
        team_domain: str = "fake-team",
    ) -> None:
        self.team_id = team_id
        self.team = team
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.messages: dict[str, dict[str, StoredMessage]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}  # by user id, as last published
        self.expired_triggers: set[str] = set()
        self.used_triggers: set[str] = set()
        self.open_ims: set[str] = set()
        self.modal_stack: list[str] = []
        self._seq = itertools.count(1)
        self._epoch = int(time.time())
        self._last_micros = 0
        self.add_user(bot_user_id, name="signoff", is_bot=True)

    # -- identities ------------------------------------------------------------------------

    def add_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Register a user and return its users.info object (fields override the defaults)."""
        name = str(fields.pop("name", user_id.lower()))
        profile = {"display_name": name, "real_name": name.title(), **fields.pop("profile", {})}
        if "email" in fields:
            profile["email"] = fields.pop("email")
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": profile["real_name"],
            "tz": "Europe/London",
            "tz_offset": 0,
            "is_bot": False,
            "is_admin": False,
            "is_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "updated": self._epoch,
            "profile": profile,
            **fields,
        }
        self.users[user_id] = user
        return user

    def auth_test(self) -> dict[str, Any]:
        """The auth.test answer for the bot token."""
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team,
            "user": "signoff",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def im_channel(self, user_id: str) -> str:
        """The DM channel id between the bot and ``user_id`` (stable per user)."""
        return "D" + user_id[1:]

    def resolve_channel(self, channel: Any) -> str:
        """Where a message to ``channel`` lands: user IDs become their DM channel."""
        value = str(channel or "")
        if _USER_ID.match(value):
            if value not in self.users:
                raise ApiError("channel_not_found")
            return self.im_channel(value)
        if not _CONVERSATION_ID.match(value):
            raise ApiError("channel_not_found")
        return value

    # -- messages --------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A unique, increasing message timestamp in Slack's ``seconds.micros`` format.

        Like Slack's, it is the wall-clock time of the post (bumped by a microsecond when
        two posts share one), so ``oldest``/``latest`` bounds in seconds find it.
        """
        micros = max(int(time.time() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def post_message(self, channel: str, args: dict[str, Any]) -> StoredMessage:
        """Store a new message from chat.postMessage arguments."""
        message = StoredMessage(
            channel=channel,
            ts=self.next_ts(),
            text=args.get("text"),
            blocks=list(args.get("blocks") or []),
            user=self.bot_user_id,
            bot_id=self.bot_id,
            app_id=self.app_id,
            team=self.team_id,
            thread_ts=args.get("thread_ts"),
            metadata=args.get("metadata"),
        )
        message.settled_at = message.posted_at
        self.messages.setdefault(channel, {})[message.ts] = message
        return message

    def update_message(self, channel: str, ts: str, args: dict[str, Any]) -> StoredMessage:
        """Apply chat.update (or a response_url replace): omitted fields keep their value."""
        message = self.messages[channel][ts]
        message.edits.append(message.to_api())
        if "text" in args:
            message.text = args["text"]
        if "blocks" in args:
            message.blocks = list(args["blocks"] or [])  # [] removes the blocks
        if "metadata" in args:
            message.metadata = args["metadata"]
        message.settled_at = time.monotonic()
        return message

    def delete_message(self, channel: str, ts: str) -> None:
        """Remove a stored message."""
        self.messages.get(channel, {}).pop(ts, None)

    def post_ephemeral(self, channel: str, args: dict[str, Any]) -> str:
        """Record an ephemeral message and return its ``message_ts``."""
        ts = self.next_ts()
        self.ephemerals.append({"channel": channel, "message_ts": ts, **args})
        return ts

    # -- views -----------------------------------------------------------------------------

    def use_trigger(self, trigger_id: Any) -> None:
        """Spend a trigger_id: single use, and it may have been expired by the test."""
        value = str(trigger_id or "")
        if not value:
            raise ApiError("invalid_trigger_id")
        if value in self.expired_triggers:
            raise ApiError("expired_trigger_id")
        if value in self.used_triggers:
            raise ApiError("exchanged_trigger_id")
        self.used_triggers.add(value)

    def _view_record(
        self, view: dict[str, Any], view_id: str, root: str, prev: str | None
    ) -> dict[str, Any]:
        external_id = view.get("external_id")
        for other_id, other in self.views.items():
            if external_id and other_id != view_id and other.get("external_id") == external_id:
                raise ApiError("duplicate_external_id")
        digest = hashlib.sha1(f"{view_id}:{next(self._seq)}".encode()).hexdigest()[:20]
        record = {
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "state": {"values": {}},
            "hash": f"{self._epoch}.{digest}",
            "root_view_id": root,
            "previous_view_id": prev,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[view_id] = record
        return record

    def open_view(self, view: dict[str, Any]) -> dict[str, Any]:
        """views.open: a new root modal."""
        view_id = f"V{next(self._seq):010d}"
        self.modal_stack = [view_id]
        return self._view_record(view, view_id, view_id, None)

    def push_view(self, view: dict[str, Any]) -> dict[str, Any]:
        """views.push: stack a modal on the open one (at most 3 in all)."""
        if not self.modal_stack:
            raise ApiError("not_found")
        if len(self.modal_stack) >= MODAL_STACK_MAX:
            raise ApiError("push_limit_reached")
        view_id = f"V{next(self._seq):010d}"
        record = self._view_record(view, view_id, self.modal_stack[0], self.modal_stack[-1])
        self.modal_stack.append(view_id)
        return record

    def update_view(self, view: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """views.update by ``view_id`` or ``external_id``, honouring the optional ``hash``."""
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (k for k, v in self.views.items() if v.get("external_id") == args["external_id"]),
                None,
            )
        current = self.views.get(str(view_id or ""))
        if current is None:
            raise ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        return self._view_record(
            view, current["id"], current["root_view_id"], current["previous_view_id"]
        )

    def publish_home(self, user_id: str, view: dict[str, Any], hash_: Any) -> dict[str, Any]:
        """views.publish: replace ``user_id``'s Home tab (one view id per user, like Slack)."""
        if user_id not in self.users:
            raise ApiError("user_not_found")
        current = self.home_views.get(user_id)
        if hash_ and (current is None or hash_ != current["hash"]):
            raise ApiError("hash_conflict")
        view_id = current["id"] if current else f"V{next(self._seq):010d}"
        record = self._view_record(view, view_id, view_id, None)
        self.home_views[user_id] = record
        return record

    # -- conversations ---------------------------------------------------------------------

    def open_conversation(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.open: a DM for one user, a group DM for several, or an existing id."""
        if args.get("channel"):
            return {"channel": {"id": self.resolve_channel(args["channel"])}}
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > CONVERSATION_USERS_MAX:
            raise ApiError("too_many_users")
        for user in users:
            if user not in self.users:
                raise ApiError("user_not_found")
        if len(users) == 1:
            channel_id = self.im_channel(users[0])
        else:
            digest = hashlib.sha1(",".join(sorted(users)).encode()).hexdigest()[:8].upper()
            channel_id = f"G{digest}"
        reply: dict[str, Any] = {"channel": {"id": channel_id}}
        if channel_id in self.open_ims:
            reply.update(no_op=True, already_open=True)
        self.open_ims.add(channel_id)
        if str(args.get("return_im")).lower() in ("1", "true") and len(users) == 1:
            reply["channel"].update(is_im=True, user=users[0], created=self._epoch)
        return reply
