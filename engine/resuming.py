"""How a step goes on after an answer: the resume cap (``@step(max_resumes=N)``) and
answers delivered as a named event (``ResumeTo.event``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.context import RESUME_EVENT, InterruptSpec, answer_for_event
from engine.definition import StepDef, Workflow
from engine.errors import TooManyResumes
from engine.models import Interrupt, InterruptKind
from engine.paths import index_steps


def over_cap(
    sd: StepDef[Any, Any],
    path: str,
    spec: InterruptSpec | None,
    interrupts: Mapping[str, Interrupt],
) -> TooManyResumes | None:
    """The error if the step at ``path`` asks for a new interrupt past its resume cap.

    Each recorded interrupt of the step was one suspend, hence (once resolved) one
    resume; the count comes from the store, so it is the same after a crash.
    """
    cap = sd.max_resumes
    if cap is None or spec is None:
        return None
    asked = sum(1 for i in interrupts.values() if i.path == path and i.id != spec.id)
    return TooManyResumes(sd.name, cap) if asked >= cap else None


def resume_events(wf: Workflow) -> frozenset[str]:
    """The event names steps of ``wf`` deliver their answers as (cached per workflow)."""
    cached = _EVENTS.get(id(wf))
    if cached is None or cached[0] is not wf:
        names = (sd.resume_event for sd in index_steps(wf).values())
        cached = _EVENTS[id(wf)] = (wf, frozenset(n for n in names if n is not None))
    return cached[1]


_EVENTS: dict[int, tuple[Workflow, frozenset[str]]] = {}


def mark_asker(sd: StepDef[Any, Any], spec: InterruptSpec | None) -> bool:
    """True if ``spec`` is a request of a ``ResumeTo.event`` step (marked with its event):
    the step completes now, and its answer goes to the step waiting for the event."""
    if sd.resume_event is None or spec is None or spec.kind is not InterruptKind.INPUT:
        return False
    spec.meta[RESUME_EVENT] = sd.resume_event
    return True


def awaited(info: Mapping[str, Any], interrupts: Mapping[str, Interrupt]) -> Interrupt | None:
    """The interrupt a suspended step's record says it waits on, if it exists yet."""
    found = interrupts.get(info.get("waiting_on") or "")
    if found is None and info.get("waiting_for_event"):
        found = answer_for_event(interrupts, info["waiting_for_event"])
    return found
