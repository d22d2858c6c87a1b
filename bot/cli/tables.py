"""Plain-text tables and reports for the command line (no I/O: functions return strings)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from bot.web.models import WorkflowView
from engine import Event, Interrupt, Run, RunDetail, StepRecord

__all__ = [
    "event_line",
    "events_table",
    "interrupts_table",
    "run_report",
    "runs_table",
    "steps_table",
    "table",
    "workflow_report",
    "workflows_table",
]

CELL_MAX = 60  # a wider cell is cut with an ellipsis so rows stay on one line


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"), default=str)
    text = " ".join(str(value).split())  # no newlines or tabs inside a cell
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def when(at: datetime | None) -> str:
    """A timestamp as ``2025-06-01 14:03:07Z``."""
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns under upper-case headers."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [[h.upper() for h in headers], *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def runs_table(runs: Sequence[Run]) -> str:
    """One line per run."""
    if not runs:
        return "no runs"
    rows = [(r.id, r.workflow, r.version, r.status.value, r.requester, r.created_at) for r in runs]
    return table(("id", "workflow", "version", "status", "requester", "created"), rows)


def steps_table(steps: Sequence[StepRecord]) -> str:
    """One line per recorded step."""
    rows = [
        (
            s.path,
            s.status.value,
            s.attempts,
            s.finished_at,
            s.output if s.error is None else s.error.message,
        )
        for s in steps
    ]
    return table(("step", "status", "attempts", "finished", "output / error"), rows)


def interrupts_table(interrupts: Sequence[Interrupt]) -> str:
    """One line per interrupt."""
    rows = [
        (
            i.id,
            i.kind.value,
            i.status.value,
            ", ".join(i.responders) or "anyone",
            f"{i.approvals}/{i.quorum}" if i.quorum > 1 else "",
            i.resolved_by,
            i.expires_at,
        )
        for i in interrupts
    ]
    return table(("interrupt", "kind", "status", "responders", "quorum", "by", "expires"), rows)


def event_line(e: Event) -> str:
    """One history entry as a single line."""
    data = {k: v for k, v in e.data.items() if v not in (None, "", [], {})}
    return f"{e.id:>5}  {when(e.at)}  {e.type.value:<17} {_cell(data) if data else ''}".rstrip()


def events_table(events: Sequence[Event]) -> str:
    """The history, one entry per line."""
    return "\n".join(event_line(e) for e in events) if events else "no events"


def run_report(detail: RunDetail, schemas: dict[str, dict[str, Any] | None]) -> str:
    """Everything about a run: summary, steps, interrupts, pending answers' schemas, history.

    ``schemas`` maps pending interrupt ids to the JSON schema of their answer.
    """
    run = detail.run
    out = [
        f"run {run.id}",
        f"  workflow   {run.workflow} v{run.version}",
        f"  status     {run.status.value}",
        f"  requester  {run.requester or '-'}",
        f"  created    {when(run.created_at)}   updated {when(run.updated_at)}",
        f"  input      {_cell(run.input)}",
    ]
    if run.output is not None:
        out.append(f"  output     {json.dumps(run.output, default=str)}")
    if run.error is not None:
        out.append(f"  error      {run.error.type}: {run.error.message}")
    out += ["", "Steps", steps_table(detail.steps) if detail.steps else "no steps yet"]
    if detail.interrupts:
        out += ["", "Interrupts", interrupts_table(detail.interrupts)]
    for i in detail.pending:
        schema = schemas.get(i.id)
        if schema is not None:
            out += ["", f"Answer {i.id} with data matching:", json.dumps(schema, indent=2)]
    out += ["", "History", events_table(detail.events)]
    return "\n".join(out)


def workflows_table(views: Sequence[WorkflowView]) -> str:
    """One line per registered workflow version."""
    if not views:
        return "no workflows registered (set SIGNOFF_WORKFLOWS)"
    rows = [
        (
            v.name,
            v.version,
            v.title,
            ", ".join(s.name for s in v.steps),
            ", ".join(s.name for s in v.steps if s.resume_schema or s.events),
        )
        for v in views
    ]
    return table(("workflow", "version", "title", "steps", "waits for people/events"), rows)


def workflow_report(view: WorkflowView) -> str:
    """A workflow's schemas: input, output, and what each waiting step asks for."""
    out = [
        f"workflow {view.name} v{view.version}" + (f": {view.title}" if view.title else ""),
        "",
        "Input schema",
        json.dumps(view.input_schema, indent=2),
        "",
        "Output schema",
        json.dumps(view.output_schema, indent=2),
    ]
    for s in view.steps:
        if s.resume_schema is None and not s.events:
            continue
        out += ["", f"Step {s.name} ({s.title})"]
        if s.suspend_schema is not None:
            out += ["  shows:", json.dumps(s.suspend_schema, indent=2)]
        if s.resume_schema is not None:
            out += ["  answer:", json.dumps(s.resume_schema, indent=2)]
        for name, schema in s.events.items():
            out += [f"  event {name}:", json.dumps(schema, indent=2)]
    return "\n".join(out)
