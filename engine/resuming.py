"""How a step goes on after an answer: the resume cap (``@step(max_resumes=N)``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.context import InterruptSpec
from engine.definition import StepDef
from engine.errors import TooManyResumes
from engine.models import Interrupt


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
