"""What each console page shows, read through the engine's public API (no HTML here).

* ``inbox``: the requests a person may answer now (``engine.list_interrupts(actor=...)``
  with their Slack user groups), each with its payload, quorum, expiry and answer form.
* ``runs_page``: runs filtered by status, workflow, requester and creation date, paged
  with a keyset cursor on ``(created_at, id)`` so any page is one indexed range scan.
* ``timeline``: a run's history as sentences (who, when, what, with answers).
* ``workflow_cards``: each registered workflow's graph, schemas and exact run counts
  (``engine.count_runs_by_workflow()``, one aggregate).
* ``step_inputs``: what each step of a run was given, where the graph says so honestly.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter

from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.blocks.text import humanize
from bot.slack.notifier import posted_messages
from bot.web.console.auth import Identity
from bot.web.console.forms import WebForm, web_form
from engine import (
    Engine,
    Event,
    EventType,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    Run,
    RunDetail,
    RunStatus,
    StepDef,
    StepStatus,
    Workflow,
    WorkflowNotRegistered,
)

__all__ = [
    "INBOX_MAX",
    "PAGE_SIZE",
    "Card",
    "Node",
    "Pending",
    "RunFilters",
    "RunsPage",
    "TimelineEntry",
    "answerable",
    "describe_value",
    "inbox",
    "newer_query",
    "older_query",
    "pending_card",
    "runs_page",
    "slack_links",
    "step_inputs",
    "timeline",
    "workflow_cards",
]

INBOX_MAX = 50
PAGE_SIZE = 50
VALUE_MAX = 400


def describe_value(value: Any) -> str:
    """A payload or answer value as one readable line (long values cut)."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif value is None:
        text = "—"
    elif isinstance(value, str | int | float):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value) or "—"
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def labelled(values: Any) -> list[tuple[str, str]]:
    """A mapping as (label, value) rows; anything else as one unlabelled row."""
    if isinstance(values, Mapping):
        return [(humanize(str(k)), describe_value(v)) for k, v in values.items()]
    if values is None:
        return []
    return [("", describe_value(values))]


def slack_links(interrupt: Interrupt) -> list[tuple[str, str]]:
    """(label, URL) of each Slack message showing ``interrupt`` (from its ``slack.msg:`` refs)."""
    links = []
    for posted in posted_messages(interrupt):
        url = f"https://slack.com/archives/{posted.channel}/p{posted.ts.replace('.', '')}"
        links.append((posted.target, url))
    return links


@dataclass(frozen=True, slots=True)
class Pending:
    """A request waiting for an answer, as a card."""

    interrupt: Interrupt
    title: str
    payload: list[tuple[str, str]]
    form: WebForm | None  # None: this person may not answer it (or it takes no answer)
    approvers: list[str]  # who approved so far (quorum)
    reminders: list[dt.datetime]  # still to come
    links: list[tuple[str, str]]


def pending_card(
    engine: Engine,
    interrupt: Interrupt,
    *,
    may_answer: bool,
    now: dt.datetime,
    form: WebForm | None = None,
) -> Pending:
    """The card for ``interrupt``; with ``may_answer``, an empty (or the given) form."""
    shown_form = None
    if may_answer and interrupt.kind is InterruptKind.INPUT:
        try:
            shown_form = form or web_form(engine.resume_model(interrupt))
        except (WorkflowNotRegistered, LookupError):
            shown_form = None  # pinned to a version this process does not have
    title = interrupt.title or humanize(interrupt.step)
    return Pending(
        interrupt=interrupt,
        title=title,
        payload=labelled(interrupt.payload),
        form=shown_form,
        approvers=[r.actor for r in interrupt.responses if r.approved],
        reminders=[r for r in interrupt.reminders if r > now],
        links=slack_links(interrupt),
    )


async def _groups(
    engine: Engine, identity: Identity, authorizer: UsergroupAuthorizer | None
) -> list[str]:
    # The Slack user groups among the open requests' responders that this person is in
    # (read from the engine's responder index; asked of Slack, cached by the authorizer).
    if authorizer is None or identity.kind != "slack":
        return []
    return await engine.groups_of(identity.user)


async def answerable(
    engine: Engine,
    identity: Identity,
    authorizer: UsergroupAuthorizer | None,
    *,
    run_id: str | None = None,
    limit: int = INBOX_MAX + 1,
) -> list[Interrupt]:
    """Pending requests ``identity`` may answer now (the engine's rules, as in Slack)."""
    groups = await _groups(engine, identity, authorizer)
    found = await engine.list_interrupts(
        actor=identity.user, groups=groups, run_id=run_id, limit=limit
    )
    return [i for i in found if i.kind is InterruptKind.INPUT]


async def inbox(
    engine: Engine, identity: Identity, authorizer: UsergroupAuthorizer | None
) -> tuple[list[Pending], bool]:
    """The inbox cards (oldest first) and whether there are more than shown."""
    found = await answerable(engine, identity, authorizer)
    now = dt.datetime.now(dt.UTC)
    cards = [pending_card(engine, i, may_answer=True, now=now) for i in found[:INBOX_MAX]]
    return cards, len(found) > INBOX_MAX


# -- runs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The runs page's query: filters and the cursor (all optional)."""

    status: RunStatus | None = None
    workflow: str | None = None
    requester: str | None = None
    since: dt.date | None = None  # created on or after this day (UTC)
    until: dt.date | None = None  # created on or before this day (UTC)
    before: tuple[dt.datetime, str] | None = None
    back: tuple[str, ...] = ()  # the cursors of the newer pages walked through ("-": first)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> tuple[RunFilters, list[str]]:
        """Read the query string; unreadable values are dropped and named in the problems."""
        problems: list[str] = []
        status = None
        if query.get("status"):
            try:
                status = RunStatus(query["status"])
            except ValueError:
                problems.append(f"unknown status {query['status'][:40]!r}")
        since = _date(query.get("since"), "from", problems)
        until = _date(query.get("until"), "to", problems)
        before = None
        if query.get("before"):
            at, _, run_id = query["before"].partition("|")
            try:
                moment = dt.datetime.fromisoformat(at)
                before = (moment, run_id) if run_id else None
            except ValueError:
                problems.append("the page link is damaged; showing the first page")
        back = tuple(b for b in (query.get("back") or "").split(BACK_SEP) if _is_cursor(b))
        return (
            cls(
                status=status,
                workflow=query.get("workflow") or None,
                requester=(query.get("requester") or "").strip() or None,
                since=since,
                until=until,
                before=before,
                back=back[-BACK_MAX:] if before else (),
            ),
            problems,
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters as query parameters (``changes`` override), without empty ones."""
        values: dict[str, Any] = {
            "status": self.status.value if self.status else None,
            "workflow": self.workflow,
            "requester": self.requester,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v}


def _date(raw: str | None, label: str, problems: list[str]) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        problems.append(f"the {label} date {raw[:20]!r} is not a date")
        return None


BACK_SEP = "~"
BACK_MAX = 20  # newer pages remembered in a link; further back, "Newest" still works


def _is_cursor(value: str) -> bool:
    if value == "-":
        return True
    at, _, run_id = value.partition("|")
    try:
        dt.datetime.fromisoformat(at)
    except ValueError:
        return False
    return bool(run_id) and len(value) <= 100


def older_query(filters: RunFilters, next_cursor: str) -> dict[str, str]:
    """Query of the next (older) page: this page's cursor goes onto the ``back`` stack."""
    here = f"{filters.before[0].isoformat()}|{filters.before[1]}" if filters.before else "-"
    back = (*filters.back, here)[-BACK_MAX:]
    return filters.query(before=next_cursor, back=BACK_SEP.join(back))


def newer_query(filters: RunFilters) -> dict[str, str] | None:
    """Query of the previous (newer) page, from the ``back`` stack; None on the first
    page, or when the stack was cut (deeper than ``BACK_MAX`` pages: use "Newest")."""
    if filters.before is None or not filters.back:
        return None
    *rest, previous = filters.back
    if previous == "-":
        return filters.query()
    return filters.query(before=previous, back=BACK_SEP.join(rest))


def cursor_of(run: Run) -> str:
    """The ``before`` value that continues after ``run``."""
    return f"{run.created_at.isoformat()}|{run.id}"


@dataclass(frozen=True, slots=True)
class RunsPage:
    """One page of runs and the cursor of the next (None on the last page)."""

    runs: list[Run]
    next_cursor: str | None


async def runs_page(engine: Engine, filters: RunFilters, *, size: int = PAGE_SIZE) -> RunsPage:
    """The page of runs ``filters`` asks for (one extra row tells if another follows)."""

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)

    found = await engine.list_runs(
        status=filters.status,
        workflow=filters.workflow,
        requester=filters.requester,
        created_after=midnight(filters.since) if filters.since else None,
        created_before=midnight(filters.until + dt.timedelta(days=1)) if filters.until else None,
        before=filters.before,
        limit=size + 1,
    )
    more = len(found) > size
    runs = found[:size]
    return RunsPage(runs, cursor_of(runs[-1]) if more and runs else None)


# -- run detail -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One history entry as a sentence, with details (answers, errors) as rows."""

    id: int
    at: dt.datetime
    kind: str  # the event type, for styling
    who: str | None
    text: str
    details: list[tuple[str, str]] = field(default_factory=list)


def _by(who: Any) -> str:
    return f" by {who}" if who else ""


def _entry(event: Event, titles: Mapping[str, str]) -> TimelineEntry:  # noqa: C901 - one case per type
    d = event.data
    step = d.get("step")
    iid = d.get("interrupt_id")
    request = titles.get(str(iid), str(iid)) if iid else "the request"
    who: Any = None
    details: list[tuple[str, str]] = []
    kind = event.type
    if kind is EventType.STARTED:
        who = d.get("requester")
        text = f"Run started{_by(who)} (workflow {d.get('workflow')} v{d.get('version')})"
    elif kind is EventType.STEP_STARTED:
        text = f"Step {step} started"
    elif kind is EventType.STEP_COMPLETED:
        text = f"Step {step} completed"
    elif kind is EventType.STEP_FAILED:
        error = d.get("error") or {}
        text = f"Step {step} failed: {error.get('type')}: {error.get('message')}"
    elif kind is EventType.STEP_RETRYING:
        text = f"Step {step} will be retried"
        details = labelled({k: v for k, v in d.items() if k not in ("step", "path")})
    elif kind is EventType.SUSPENDED:
        responders = ", ".join(d.get("responders") or []) or "anyone"
        quorum = d.get("quorum") or 1
        text = f"Waiting for an answer to “{d.get('title') or step}” from {responders}"
        if quorum > 1:
            text += f" ({quorum} approvals needed)"
        if d.get("expires_at"):
            text += f"; expires {_when(d['expires_at'])}"
    elif kind is EventType.RESPONSE_RECORDED:
        who = d.get("actor")
        approved = d.get("approved")
        verb = "approved" if approved is True else "rejected" if approved is False else "answered"
        text = f"{who} {verb} {request}"
        if approved is True and (d.get("needed") or 1) > 1:
            text += f" ({d.get('approvals')} of {d.get('needed')} approvals)"
        details = labelled(d.get("data"))
    elif kind is EventType.RESOLVED:
        who = d.get("by")
        text = f"{request} {d.get('status')}{_by(who)}"
    elif kind is EventType.EXPIRED:
        text = f"{request} expired unanswered (then: {d.get('action')})"
        details = labelled(d.get("data"))
    elif kind is EventType.REMINDED:
        text = f"Reminder sent for {request}"
    elif kind is EventType.BAILED:
        text = f"Run stopped as rejected: {d.get('reason') or d.get('status')}"
    elif kind is EventType.CANCELLED:
        who = d.get("by")
        text = f"Run cancelled{_by(who)}" + (f": {d['reason']}" if d.get("reason") else "")
    elif kind is EventType.COMPLETED:
        text = "Run completed"
        details = labelled(d.get("output"))
    elif kind is EventType.FAILED:
        error = d.get("error") or {}
        text = f"Run failed: {error.get('type')}: {error.get('message')}"
    elif kind is EventType.RETRIED:
        who = d.get("by")
        error = d.get("error") or {}
        text = f"Run retried{_by(who)} from its failed step"
        if error:
            text += f" (it had failed: {error.get('type')}: {error.get('message')})"
    elif kind is EventType.UNDELIVERED:
        text = f"{request} could not be shown in Slack ({d.get('target')}): {d.get('reason')}"
    else:  # pragma: no cover - a type added to the engine later
        text = kind.value.replace("_", " ")
        details = labelled(d)
    return TimelineEntry(event.id, event.at, kind.value, who, text, details)


def _when(value: Any) -> str:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def timeline(events: Iterable[Event], interrupts: Iterable[Interrupt]) -> list[TimelineEntry]:
    """A run's history, oldest first, as sentences."""
    titles = {i.id: f"“{i.title or humanize(i.step)}”" for i in interrupts}
    return [_entry(e, titles) for e in events]


# -- step inputs ------------------------------------------------------------------------

SEE_PREVIOUS = "see previous step"

_TOP_LEVEL = re.compile(r"^(\d+):([^/\[]+)$")


@dataclass(frozen=True, slots=True)
class StepInput:
    """What a step was given: rows of the value, or a note when it cannot be told."""

    rows: list[tuple[str, str]]
    note: str | None = None  # e.g. "the run's input", "see previous step"


def step_inputs(engine: Engine, detail: RunDetail) -> dict[str, StepInput]:
    """Each recorded step's input by path, where it can be derived honestly.

    The engine records outputs only. In a sequence of plain steps, a step is given the
    previous step's output (the first one the run's input), so for a step at the top
    level of the workflow whose previous node is a plain step with a recorded output,
    that output is shown. Anywhere else (inside a branch, parallel block, loop or
    sub-workflow, after one of those, or with a version this process does not have) the
    input is not derived: the note says to see the previous step.
    """
    run = detail.run
    try:
        nodes = list(engine.registry.get(run.workflow, run.version).nodes)
    except (WorkflowNotRegistered, LookupError):
        nodes = []
    recorded = {s.path: s for s in detail.steps}
    found: dict[str, StepInput] = {}
    for s in detail.steps:
        found[s.path] = StepInput([], SEE_PREVIOUS)
        top = _TOP_LEVEL.match(s.path)
        if top is None or not nodes:
            continue
        index = int(top.group(1))
        if index >= len(nodes) or not _is_step(nodes[index], top.group(2)):
            continue
        if index == 0:
            found[s.path] = StepInput(labelled(run.input), "the run's input")
            continue
        before = nodes[index - 1]
        if not isinstance(before, StepDef):
            continue
        previous = recorded.get(f"{index - 1}:{before.name}")
        if previous is None or previous.status is not StepStatus.COMPLETED:
            continue
        found[s.path] = StepInput(labelled(previous.output), f"the output of {before.name}")
    return found


def _is_step(node: Any, name: str) -> bool:
    return isinstance(node, StepDef) and node.name == name


# -- workflows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A workflow graph node: a step, a branch, a parallel block, a loop or a sub-workflow."""

    kind: str  # step | branch | parallel | foreach | workflow
    label: str
    detail: str = ""
    children: list[Node] = field(default_factory=list)
    schemas: list[tuple[str, str]] = field(default_factory=list)  # (what, JSON schema)


def _schema_text(t: Any) -> str:
    schema = (
        t.model_json_schema()
        if isinstance(t, type) and issubclass(t, BaseModel)
        else TypeAdapter(t).json_schema()
    )
    return json.dumps(schema, indent=2, ensure_ascii=False)


def _node(node: Any) -> Node:
    if isinstance(node, StepDef):
        schemas = []
        if node.suspend_model is not None:
            schemas.append(("Shows (suspend)", _schema_text(node.suspend_model)))
        if node.resume_model is not None:
            schemas.append(("Asks (resume)", _schema_text(node.resume_model)))
        for name, model in node.events.items():
            schemas.append((f"Event {name}", _schema_text(model)))
        waits = " · waits for a person" if node.resume_model is not None else ""
        return Node("step", node.title or node.name, f"{node.name}{waits}", schemas=schemas)
    if isinstance(node, Workflow):
        return Node("workflow", f"Sub-workflow {node.name}", f"v{node.version}", _nodes(node.nodes))
    if hasattr(node, "cases"):
        children = [
            Node("case", f"when {getattr(cond, '__name__', 'condition')}", "", [_node(case)])
            for cond, case in node.cases
        ]
        if node.otherwise is not None:
            children.append(Node("case", "otherwise", "", [_node(node.otherwise)]))
        return Node("branch", f"Branch {node.name}", "", children)
    if hasattr(node, "branches"):
        return Node("parallel", f"In parallel: {node.name}", "", [_node(b) for b in node.branches])
    if hasattr(node, "body"):
        detail = f"each item, {node.concurrency} at a time"
        return Node("foreach", f"For each: {node.name}", detail, [_node(node.body)])
    return Node("step", str(getattr(node, "name", node)))  # pragma: no cover


def _nodes(nodes: Iterable[Any]) -> list[Node]:
    return [_node(n) for n in nodes]


@dataclass(frozen=True, slots=True)
class Card:
    """A workflow definition with its versions and its runs by status."""

    name: str
    title: str
    versions: list[str]
    steps: list[Node]
    input_schema: str
    output_schema: str
    counts: list[tuple[str, int]]  # (status, exact number of runs)


async def workflow_cards(engine: Engine) -> list[Card]:
    """Every registered workflow (newest version's graph), with all its versions."""
    by_name: dict[str, list[Workflow]] = {}
    for wf in engine.registry.all():
        by_name.setdefault(wf.name, []).append(wf)
    cards = []
    totals = await engine.count_runs_by_workflow()  # one indexed aggregate, exact
    for name in sorted(by_name):
        newest = engine.registry.get(name)
        mine = totals.get(name, {})
        counts = [(s.value, mine.get(s.value, 0)) for s in RunStatus]
        cards.append(
            Card(
                name=name,
                title=newest.title or humanize(name),
                versions=sorted(str(wf.version) for wf in by_name[name]),
                steps=_nodes(newest.nodes),
                input_schema=_schema_text(newest.input),
                output_schema=_schema_text(newest.output),
                counts=counts,
            )
        )
    return cards


def is_pending(interrupt: Interrupt) -> bool:
    """Whether ``interrupt`` still waits."""
    return interrupt.status is InterruptStatus.PENDING
