"""``signoff ask``: ask people from CI or a script, through a running Signoff server.

::

    signoff ask --title "Deploy billing 2.4.1" --field service=billing --field version=2.4.1 \\
        --responder U0ALICE --responder group:S0SRE --quorum 2 --expires 1h --wait

Talks to ``$SIGNOFF_URL`` with ``$SIGNOFF_TOKEN`` (or ``$SIGNOFF_API_TOKEN``). Prints the
decision (``--json``: the request as JSON). Exit status: 0 approved or answered, 1
rejected, 3 expired or cancelled, 2 usage or connection errors. Without ``--wait`` it
prints the new request's id and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from bot.client import ApiError, Client, ClientError, RequestStatus, RequestView, WaitTimeout

__all__ = ["EXIT", "add_ask_parser", "cmd_ask", "parse_duration"]

EXIT = {
    RequestStatus.APPROVED: 0,
    RequestStatus.ANSWERED: 0,
    RequestStatus.REJECTED: 1,
    RequestStatus.EXPIRED: 3,
    RequestStatus.CANCELLED: 3,
    RequestStatus.FAILED: 3,
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m`` as seconds (ValueError otherwise)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 2d)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _field(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--field takes KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        return key, value
    # Numbers, booleans and null as such; anything else (lists, objects) stays text.
    return key, parsed if isinstance(parsed, int | float | bool) or parsed is None else value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_ask_parser(sub: Any) -> None:
    """Add ``ask`` to the ``signoff`` subcommands."""
    p = sub.add_parser("ask", help="ask people through a Signoff server (CI, scripts)")
    p.add_argument("--title", required=True, help="the request's headline")
    p.add_argument("--text", default="", help="markdown shown above the fields")
    p.add_argument("--field", action="append", type=_field, default=[], help="KEY=VALUE shown")
    p.add_argument("--responder", action="append", default=[], help="Slack user or group:S...")
    p.add_argument("--quorum", type=int, default=1, help="distinct approvals needed")
    p.add_argument("--requester", help="Slack user id of who asks (may not approve it)")
    p.add_argument("--channel", help="Slack channel id")
    p.add_argument("--expires", type=_duration, help="e.g. 30m, 1h, 2d")
    p.add_argument("--on-expiry", choices=["reject", "fail"], help="what expiry means")
    p.add_argument("--remind", action="append", type=_duration, default=[], help="e.g. 15m")
    p.add_argument("--schema", help="response JSON Schema: inline JSON or @file.json")
    p.add_argument(
        "--comment",
        choices=["none", "optional", "required", "required_on_reject"],
        default="optional",
        help="required_on_reject: Reject asks for a reason in Slack, Approve does not",
    )
    p.add_argument("--callback-url", help="POSTed (signed) when decided")
    p.add_argument("--idempotency-key", help="the same key and body return the same request")
    p.add_argument("--wait", action="store_true", help="wait for the decision")
    p.add_argument("--timeout", type=_duration, help="with --wait: give up after this long")
    p.add_argument("--json", action="store_true", help="print the request as JSON")
    p.add_argument("--url", help="server URL (default $SIGNOFF_URL)")
    p.add_argument("--token", help="API token (default $SIGNOFF_TOKEN or $SIGNOFF_API_TOKEN)")


def _response(args: argparse.Namespace) -> Any:
    if args.schema is None:
        return {"preset": "approval", "comment": args.comment}
    text = Path(args.schema[1:]).read_text() if args.schema.startswith("@") else args.schema
    return json.loads(text)


def _report(view: RequestView, as_json: bool) -> str:
    if as_json:
        return view.model_dump_json(indent=2)
    lines = [f"request {view.id}: {view.status.value}"]
    if view.decided_by:
        lines.append(f"decided by {view.decided_by} at {view.decided_at}")
    if view.quorum.needed > 1:
        lines.append(f"approvals: {view.quorum.approvals} of {view.quorum.needed}")
    if view.answer:
        lines.append("answer: " + json.dumps(view.answer, ensure_ascii=False))
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> int:
    """Run ``signoff ask``; return the exit status."""
    try:
        response = _response(args)
    except (OSError, ValueError) as exc:
        print(f"signoff ask: --schema: {exc}", file=sys.stderr)
        return 2
    try:
        client = Client(args.url, args.token)
    except ValueError as exc:
        print(f"signoff ask: {exc}", file=sys.stderr)
        return 2
    with client:
        try:
            view = client.request(
                args.title,
                text=args.text,
                fields=dict(args.field),
                response=response,
                responders=args.responder,
                quorum=args.quorum,
                requester=args.requester,
                channel=args.channel,
                expires=args.expires,
                on_expiry=args.on_expiry,
                reminders=args.remind,
                callback_url=args.callback_url,
                idempotency_key=args.idempotency_key,
            )
            if not args.wait:
                print(_report(view, args.json))
                return 0
            view = client.wait(view.id, timeout=args.timeout)
        except WaitTimeout as exc:
            print(_report(exc.request, args.json))
            print(f"signoff ask: still pending after --timeout: {exc}", file=sys.stderr)
            return 3
        except ApiError as exc:
            print(f"signoff ask: {exc}", file=sys.stderr)
            return 2
        except ClientError as exc:
            print(f"signoff ask: {exc}", file=sys.stderr)
            return 2
    print(_report(view, args.json))
    return EXIT[view.status]
