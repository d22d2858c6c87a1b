"""The ``signoff`` command: serve, and operate runs directly on the configured database.

::

    signoff serve                                   run the service (HTTP, Slack, API)
    signoff workflows [show NAME]                   registered workflows and their schemas
    signoff start NAME --input JSON [--as WHO]      start a run, wait until it settles
    signoff runs [--status S] [--workflow W]        list runs, newest first
    signoff run ID [--follow]                       steps, interrupts, history (live)
    signoff resume RUN INTERRUPT --data JSON --as ACTOR
    signoff cancel RUN [--reason TEXT]

Every command but ``serve`` works on ``SIGNOFF_DATABASE_URL`` without a server: ``start``
and ``resume`` drive the run in this process until it waits again or finishes (a run
still going when the command exits is picked up by the server, or by the next command
that opens the engine). ``--input``/``--data`` take JSON, ``@file.json`` or ``-`` (stdin).
Errors are one line on stderr and a non-zero exit: 1 for a refused operation, 2 for
usage or configuration errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bot.cli.ask import add_ask_parser, cmd_ask
from bot.cli.mcp import add_mcp_parser, cmd_mcp
from bot.cli.tables import event_line, run_report, runs_table, workflow_report, workflows_table
from bot.loader import load_workflows
from bot.logs import configure_logging, secrets_of
from bot.settings import ConfigError, Settings, load_settings
from bot.web.actors import actor_problem
from bot.web.triggers import scoped_key
from bot.web.views import describe_workflow, resume_schema
from engine import (
    SETTLED,
    DefinitionError,
    Engine,
    RunStatus,
    SignoffError,
    open_store,
)

__all__ = ["CliError", "build_parser", "main"]

log = logging.getLogger("signoff.cli")

SETTLE_TIMEOUT = 30.0  # seconds start/resume wait for the run to park or finish
FOLLOW_POLL = 0.5


class CliError(Exception):
    """A failure to report as one line on stderr (exit status 1)."""


def read_json_arg(value: str, what: str) -> Any:
    """Parse ``--input``/``--data``: inline JSON, ``@path`` or ``-`` for stdin."""
    try:
        if value == "-":
            text = sys.stdin.read()
        elif value.startswith("@"):
            text = Path(value[1:]).read_text()
        else:
            text = value
    except OSError as exc:
        raise CliError(f"cannot read {what}: {exc.strerror}: {value[1:]}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} is not valid JSON: {exc}") from None


def _engine(settings: Settings) -> Engine:
    try:
        workflows = load_workflows(settings.workflows)
    except (ImportError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return Engine(
        open_store(settings.database_url),
        workflows=workflows,
        lease=settings.lease_seconds,
        poll_interval=settings.poll_interval,
    )


@contextlib.asynccontextmanager
async def reading(settings: Settings) -> AsyncIterator[Engine]:
    """An engine whose store is open but which drives nothing (for queries and cancel).

    No recovery, timers or outbox delivery: looking at runs must not take them over.
    """
    engine = _engine(settings)
    await engine.open_readonly()
    try:
        yield engine
    finally:
        await engine.close()


@contextlib.asynccontextmanager
async def driving(settings: Settings) -> AsyncIterator[Engine]:
    """A started engine that drives the runs this command starts or resumes."""
    engine = _engine(settings)
    await engine.start_background()
    try:
        yield engine
    finally:
        await engine.close(grace=settings.shutdown_grace)


async def _settle(engine: Engine, run_id: str) -> str:
    try:
        run = await engine.wait(run_id, until=SETTLED, timeout=SETTLE_TIMEOUT)
    except TimeoutError:
        return "still running (the server, or the next signoff command, carries on with it)"
    return run.status.value


async def _pending_lines(engine: Engine, run_id: str) -> list[str]:
    lines = []
    for i in await engine.list_interrupts(run_id=run_id):
        who = ", ".join(i.responders) or "anyone"
        lines.append(f"  waiting on {i.id} ({i.kind.value}; may answer: {who})")
    return lines


# -- commands ---------------------------------------------------------------------------


async def cmd_workflows(args: argparse.Namespace, settings: Settings) -> None:
    """List workflows, or show one's schemas."""
    engine = _engine(settings)
    if args.action == "show":
        if not args.name:
            raise CliError("usage: signoff workflows show NAME")
        try:
            wf = engine.registry.get(args.name)
        except SignoffError as exc:
            raise CliError(str(exc)) from None
        print(workflow_report(describe_workflow(wf)))
        return
    print(workflows_table([describe_workflow(wf) for wf in engine.registry.all()]))


async def cmd_start(args: argparse.Namespace, settings: Settings) -> None:
    """Start a run and wait until it waits for someone or finishes."""
    data = read_json_arg(args.input, "--input")
    key = scoped_key(args.name, args.idempotency_key) if args.idempotency_key else None
    async with driving(settings) as engine:
        run_id = await engine.start(args.name, data, requester=args.requester, idempotency_key=key)
        status = await _settle(engine, run_id)
        print(f"run {run_id} started: {status}")
        for line in await _pending_lines(engine, run_id):
            print(line)


async def cmd_runs(args: argparse.Namespace, settings: Settings) -> None:
    """List runs, newest first."""
    async with reading(settings) as engine:
        runs = await engine.list_runs(
            status=args.status, workflow=args.workflow, limit=args.limit, offset=args.offset
        )
    print(runs_table(runs))


async def cmd_run(args: argparse.Namespace, settings: Settings) -> None:
    """Show a run; with --follow, then print its history as it grows until it ends."""
    async with reading(settings) as engine:
        detail = await engine.get_run(args.id)
        schemas = {i.id: resume_schema(engine, i) for i in detail.pending}
        print(run_report(detail, schemas), flush=True)
        if not args.follow:
            return
        after = detail.events[-1].id if detail.events else 0
        status = detail.run.status
        while not status.terminal:
            await asyncio.sleep(FOLLOW_POLL)
            # Status first: a finished run's last events are committed with its status.
            run = await engine.find_run(args.id)
            for event in await engine.events(args.id, after_id=after):
                print(event_line(event), flush=True)
                after = event.id
            status = run.status if run is not None else RunStatus.CANCELLED
        print(f"run {args.id} is {status.value}")


async def cmd_resume(args: argparse.Namespace, settings: Settings) -> None:
    """Answer an interrupt as ``--as`` and wait until the run settles again."""
    data = read_json_arg(args.data, "--data")
    problem = actor_problem(args.actor)
    if problem is not None:
        raise CliError(problem)
    async with driving(settings) as engine:
        outcome = await engine.resume(args.run, args.interrupt, data, actor=args.actor)
        if outcome.resolved:
            print(f"interrupt {args.interrupt} is {outcome.status.value} by {args.actor}")
        else:
            print(f"recorded {args.actor}'s approval: {outcome.approvals} of {outcome.needed}")
        print(f"run {args.run} is {await _settle(engine, args.run)}")


async def cmd_cancel(args: argparse.Namespace, settings: Settings) -> None:
    """Cancel a run."""
    async with reading(settings) as engine:
        run = await engine.cancel(args.run, reason=args.reason, actor=args.actor)
    print(f"run {run.id} is {run.status.value}")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    """Run the service until SIGTERM/SIGINT (bot.server.serve)."""
    from bot.server import serve  # imports Slack's SDKs: only when serving

    if not settings.slack_enabled:
        log.warning(
            "Slack is not configured (no SLACK_BOT_TOKEN): running workflows, the REST API "
            "and webhooks only; answer requests with the API or `signoff resume`"
        )
    if settings.worker_index is None:  # not a worker: maybe the parent of several
        from bot.workers import default_workers, supervise

        workers = getattr(args, "workers", None) or _workers_from_env() or default_workers(settings)
        if workers > 1:
            raise SystemExit(supervise(settings, workers))
    try:
        asyncio.run(serve(settings))
    except (ImportError, ValueError, DefinitionError) as exc:
        raise CliError(str(exc)) from None


def _workers_from_env() -> int | None:
    value = os.environ.get("SIGNOFF_WORKERS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else None


# -- parsing ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``signoff`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="signoff", description="Human approvals for Slack on a durable workflow engine."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the service until SIGTERM/SIGINT")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes sharing the port (default: SIGNOFF_WORKERS, else 1; "
                   "see docs/deploy.md)")  # fmt: skip

    p = sub.add_parser("workflows", help="list workflows, or `show NAME` for its schemas")
    p.add_argument("action", nargs="?", choices=["show"], help="show one workflow")
    p.add_argument("name", nargs="?", help="workflow name (with show)")

    p = sub.add_parser("start", help="start a run")
    p.add_argument("name", help="workflow name")
    p.add_argument("--input", default="{}", help="input as JSON, @file.json or - (stdin)")
    p.add_argument("--as", dest="requester", help="who asks (may not approve their own request)")
    p.add_argument("--idempotency-key", help="the same key returns the same run")

    p = sub.add_parser("runs", help="list runs, newest first")
    p.add_argument("--status", choices=[s.value for s in RunStatus])
    p.add_argument("--workflow")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)

    p = sub.add_parser("run", help="show a run's steps, interrupts and history")
    p.add_argument("id", help="run id")
    p.add_argument("--follow", "-f", action="store_true", help="print new history until it ends")

    p = sub.add_parser("resume", help="answer an interrupt")
    p.add_argument("run", help="run id")
    p.add_argument("interrupt", help="interrupt id (see `signoff run ID`)")
    p.add_argument("--data", required=True, help="answer as JSON, @file.json or - (stdin)")
    p.add_argument("--as", dest="actor", required=True, help="who answers")

    p = sub.add_parser("cancel", help="cancel a run")
    p.add_argument("run", help="run id")
    p.add_argument("--reason", default="", help="why (kept in the history)")
    p.add_argument("--as", dest="actor", help="who cancels")

    add_ask_parser(sub)  # signoff ask: through a server (bot/cli/ask.py)
    add_mcp_parser(sub)  # signoff mcp: the MCP server for agents (bot/mcp/)
    return parser


Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, None]]

COMMANDS: dict[str, Command] = {
    "workflows": cmd_workflows,
    "start": cmd_start,
    "runs": cmd_runs,
    "run": cmd_run,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
}


CLIENT_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ask": cmd_ask,
    "mcp": cmd_mcp,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``signoff`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # talk to a server: no database, no settings
        return CLIENT_COMMANDS[args.command](args)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print("signoff: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    # Workflow modules named relative to where the command runs (examples.deploy_approval)
    # must import even though the console script's own directory is what is on sys.path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    level = settings.log_level if args.command == "serve" else "WARNING"
    configure_logging(level, settings.log_format, secrets=secrets_of(settings))
    try:
        if args.command == "serve":
            cmd_serve(args, settings)
        else:
            asyncio.run(COMMANDS[args.command](args, settings))
    except CliError as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return 1
    except (SignoffError, ImportError) as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
