"""Turn engine records and workflow definitions into the API's views (also used by the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from bot.web.models import (
    InterruptView,
    RunDetailView,
    RunLinks,
    RunView,
    WorkflowStepView,
    WorkflowView,
)
from engine import (
    Engine,
    Interrupt,
    InterruptKind,
    InterruptStatus,
    Run,
    RunDetail,
    StepDef,
    Workflow,
    WorkflowNotRegistered,
)

__all__ = [
    "describe_workflow",
    "interrupt_view",
    "iter_steps",
    "resume_schema",
    "run_detail_view",
    "run_links",
    "run_view",
]

API = "/api"


def _seg(value: str) -> str:
    # Interrupt ids contain ':', '#' and '/' ("1:approve#0"): encode everything.
    return quote(value, safe="")


def run_links(run_id: str) -> RunLinks:
    """The API URLs of a run."""
    base = f"{API}/runs/{_seg(run_id)}"
    return RunLinks(run=base, events=f"{base}/events", stream=f"{base}/stream")


def run_view(run: Run) -> RunView:
    """A run as the API shows it."""
    return RunView.model_validate(run.model_dump())


def resume_schema(engine: Engine, interrupt: Interrupt) -> dict[str, Any] | None:
    """JSON schema of what answers ``interrupt`` (None for sleeps or unknown versions)."""
    try:
        if interrupt.kind is InterruptKind.INPUT:
            return engine.resume_model(interrupt).model_json_schema()
        if interrupt.kind is InterruptKind.EVENT and interrupt.event is not None:
            model = engine.step_of(interrupt).events.get(interrupt.event)
            return model.model_json_schema() if model is not None else None
    except (WorkflowNotRegistered, LookupError):
        # The run is pinned to a version this process does not have: nothing to show,
        # and resuming will say so.
        return None
    return None


def interrupt_view(engine: Engine, interrupt: Interrupt) -> InterruptView:
    """An interrupt with its answer schema (when pending) and resume URL."""
    pending = interrupt.status is InterruptStatus.PENDING
    url = None
    if interrupt.kind is InterruptKind.INPUT:
        url = f"{API}/runs/{_seg(interrupt.run_id)}/interrupts/{_seg(interrupt.id)}/resume"
    # resume_schema is the view's own (a pending interrupt's answer schema), not the record's.
    fields = interrupt.model_dump(include=set(InterruptView.model_fields) - {"resume_schema"})
    return InterruptView(
        **fields,
        approvals=interrupt.approvals,
        resume_schema=resume_schema(engine, interrupt) if pending else None,
        resume_url=url,
    )


def run_detail_view(engine: Engine, detail: RunDetail) -> RunDetailView:
    """A run with steps, interrupts (pending first) and history."""
    interrupts = [interrupt_view(engine, i) for i in detail.interrupts]
    return RunDetailView(
        **run_view(detail.run).model_dump(),
        steps=detail.steps,
        pending=[i for i in interrupts if i.status is InterruptStatus.PENDING],
        interrupts=interrupts,
        events=detail.events,
        links=run_links(detail.run.id),
    )


def iter_steps(node: Any) -> Iterator[StepDef[Any, Any]]:
    """Every step of a workflow graph, in definition order (sub-workflows included)."""
    if isinstance(node, StepDef):
        yield node
        return
    if isinstance(node, Workflow):
        for child in node.nodes:
            yield from iter_steps(child)
        return
    # Branch / Parallel / Foreach nodes: walked by their attributes, since only the
    # Workflow builder methods that create them are public.
    for _, case in getattr(node, "cases", ()):
        yield from iter_steps(case)
    for attr in ("otherwise", "body"):
        child = getattr(node, attr, None)
        if child is not None:
            yield from iter_steps(child)
    for child in getattr(node, "branches", ()):
        yield from iter_steps(child)


def _schema(t: Any) -> dict[str, Any]:
    if isinstance(t, type) and issubclass(t, BaseModel):
        return t.model_json_schema()
    return TypeAdapter(t).json_schema()


def describe_workflow(wf: Workflow) -> WorkflowView:
    """A workflow's schemas: input, output, and each waiting step's suspend/resume/events."""
    seen: set[int] = set()
    steps = []
    for sd in iter_steps(wf):
        if id(sd) in seen:  # a step reused in two branches is listed once
            continue
        seen.add(id(sd))
        steps.append(
            WorkflowStepView(
                name=sd.name,
                title=sd.title,
                suspend_schema=sd.suspend_model.model_json_schema() if sd.suspend_model else None,
                resume_schema=sd.resume_model.model_json_schema() if sd.resume_model else None,
                events={k: m.model_json_schema() for k, m in sd.events.items()},
            )
        )
    return WorkflowView(
        name=wf.name,
        version=str(wf.version),
        title=wf.title,
        input_schema=_schema(wf.input),
        output_schema=_schema(wf.output),
        steps=steps,
    )
