"""Drives one run through its workflow graph, once, from the recorded state.

Completed steps are never executed again: their recorded outputs are read back.
A suspended step is only re-run when the interrupt it waits on was resolved (or,
with ``resume_to="output"``, not re-run at all: the answer becomes its output).
Branch choices are recorded so a resumed run never re-decides them. Parallel
branches and foreach items all run until they finish or park; the run parks if any
of them parked, and fails or bails if any of them did.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from engine import foreach, paths, resuming
from engine.definition import Branch, Foreach, Parallel, StepDef, Workflow, node_name
from engine.errors import StepOutputInvalid
from engine.models import StepStatus
from engine.stepping import Bailed, Failed, Parked, StepRunner, error_info, validated
from engine.store.base import RunState, StepWrite, Store

__all__ = [
    "Bailed",
    "Execution",
    "Failed",
    "Parked",
    "Services",
    "coerce",
    "dump_json",
    "error_info",
]


def to_python(value: Any) -> Any:
    """Plain Python data (dicts, lists) from models, for re-validation as another type."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(t: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter for a type."""
    found = _ADAPTERS.get(t)
    if found is None:
        found = _ADAPTERS[t] = TypeAdapter(t)
    return found


def coerce(value: Any, target: Any) -> Any:
    """Give ``value`` to a node expecting ``target`` (checked to fit at registration)."""
    if target is Any:  # a class since 3.11, but isinstance(x, Any) raises TypeError
        return value
    if isinstance(target, type) and isinstance(value, target):
        return value
    return adapter(target).validate_python(to_python(value))


def dump_json(value: Any, t: Any) -> str:
    """Serialize a value of type ``t`` for the store."""
    return adapter(t).dump_json(value).decode()


@dataclass
class Services:
    """What an execution needs from the engine."""

    store: Store
    owner: str
    clock: Callable[[], float]
    on_commit: Callable[[], None]  # outbox rows were committed: deliver them now
    on_timers: Callable[[], None]  # timers were committed: recompute the next wake-up


class Execution(StepRunner):
    """One pass over a run's graph: returns its output or raises Parked/Bailed/Failed."""

    def __init__(self, services: Services, wf: Workflow, state: RunState) -> None:
        self.s = services
        self.wf = wf
        self.state = state
        self.run = state.run
        self.input = wf.input_adapter.validate_python(state.run.input)
        self.resume_events = resuming.resume_events(wf)
        # Interrupt ids created in this pass, so steps running side by side (parallel
        # branches, foreach items) cannot both create one with the same id.
        self.claimed: dict[str, tuple[str, str]] = {}
        self.outputs: dict[str, str] = {}  # step name -> output JSON, completed in this pass
        # Completed-step records not committed yet. They are committed before any more user
        # code runs (and with the run's final write), so "completed steps never run again"
        # holds while a linear run needs one commit per step instead of two.
        self.unflushed: list[StepWrite] = []
        # True once `unflushed` holds the result of user code. A step completed from an
        # interrupt's answer (resume_to="output") is derived from a resolution that is
        # already durable, so it can wait for the next commit without breaking that rule.
        self.must_flush = False

    async def run_workflow(self) -> Any:
        """Execute the whole graph; return the workflow's validated output."""
        out = coerce(await self.sequence(self.wf, self.input, ""), self.wf.output)
        try:
            return validated(self.wf.output_adapter, out, f"workflow {self.wf.name!r}")[0]
        except StepOutputInvalid as exc:
            raise Failed(error_info(exc)) from exc

    async def sequence(self, wf: Workflow, value: Any, prefix: str) -> Any:
        for i, node in enumerate(wf.nodes):
            value = await self.node(node, value, paths.in_sequence(prefix, i))
        return value

    async def node(self, node: Any, value: Any, path: str) -> Any:
        if isinstance(node, StepDef):
            return await self.step(node, coerce(value, node.input_type), paths.of_step(path, node))
        if isinstance(node, Workflow):
            child_in = coerce(value, node.input)
            out = await self.sequence(node, child_in, paths.of_subworkflow(path, node))
            return coerce(out, node.output)
        if isinstance(node, Branch):
            return await self.branch(node, value, paths.of_composite(path, node.name))
        if isinstance(node, Parallel):
            path = paths.of_composite(path, node.name)
            outs = await self.gather(
                [self.node(b, value, paths.in_case(path, j)) for j, b in enumerate(node.branches)]
            )
            names = [node_name(b) for b in node.branches]
            assert node.output_model is not None
            return node.output_model(**dict(zip(names, outs, strict=True)))
        if isinstance(node, Foreach):
            return await self.foreach(node, value, paths.of_composite(path, node.name))
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover - checked at registration

    async def foreach(self, node: Foreach, value: list[Any], path: str) -> list[Any]:
        """Run the body for each item (see ``engine.foreach``: slots, loop control,
        failure policy, batches)."""
        return await foreach.run(self, node, value, path)

    async def gather(self, coros: list[Awaitable[Any]]) -> list[Any]:
        """Run all; every branch settles before the outcome is decided."""
        results = await asyncio.gather(*coros, return_exceptions=True)
        for kind in (Failed, Bailed, Parked):
            for r in results:
                if isinstance(r, kind):
                    raise r
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    async def branch(self, node: Branch, value: Any, path: str) -> Any:
        chosen_json = self.state.step_outputs.get(path)
        if path in self.state.steps and chosen_json is not None:
            chosen = int(json.loads(chosen_json))
        else:
            started = self.s.clock()
            chosen = -1
            try:
                for k, (cond, _) in enumerate(node.cases):
                    if cond(value):
                        chosen = k
                        break
            except Exception as exc:
                raise Failed(error_info(exc)) from exc
            if chosen == -1 and node.otherwise is not None:
                chosen = len(node.cases)
            await self.commit(
                StepWrite(
                    path,
                    node.name,
                    StepStatus.COMPLETED,
                    str(chosen),
                    None,
                    1,
                    started,
                    self.s.clock(),
                )
            )
        targets = [n for _, n in node.cases] + [node.otherwise]
        if chosen == -1:
            return value
        return await self.node(targets[chosen], value, paths.in_case(path, chosen))

    def defer(self, write: StepWrite) -> None:
        """Buffer ``write``: committed before any more user code runs, or with the park."""
        self.unflushed.append(write)
        self.must_flush = True

    async def commit(self, write: StepWrite | None = None) -> None:
        """Commit ``write`` together with any buffered step results."""
        writes, self.unflushed = self.unflushed, []
        self.must_flush = False
        if write is not None:
            writes.append(write)
        if not writes:
            return
        await self.s.store.commit_steps(self.run.id, self.s.owner, writes, self.s.clock())
        self._committed(writes)

    async def park(self) -> bool:
        """Commit buffered results and park the run, in one write; False if an interrupt
        was resolved since the run was read (it must be driven again)."""
        writes, self.unflushed = self.unflushed, []
        self.must_flush = False
        parked: bool = await self.s.store.release_run(
            self.run.id, self.s.owner, self.state.wake_seq, self.s.clock(), writes
        )
        self._committed(writes)
        return parked

    def _committed(self, writes: list[StepWrite]) -> None:
        if any(w.outbox for w in writes):
            self.s.on_commit()
        if any(s.expires_at is not None or s.reminders for w in writes for s in w.interrupts):
            self.s.on_timers()
