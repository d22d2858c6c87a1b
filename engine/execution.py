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
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from engine import paths
from engine.context import BailSignal, InterruptSpec, StepContext, SuspendSignal
from engine.definition import Branch, Foreach, Parallel, StepDef, Workflow, node_name
from engine.errors import InterruptExpired
from engine.models import ErrorInfo, EventType, InterruptStatus, StepStatus
from engine.store.base import EventWrite, OutboxWrite, RunState, StepWrite, Store


class Parked(Exception):
    """Some path of the run waits on an interrupt."""


class Bailed(Exception):
    """A step bailed: the run ends as rejected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(Exception):
    """A step (or the glue between steps) failed for good."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception for the record."""
    return ErrorInfo(
        type=type(exc).__qualname__,
        message=str(exc) or type(exc).__qualname__,
        traceback="".join(traceback.format_exception(exc)),
    )


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


class Execution:
    """One pass over a run's graph: returns its output or raises Parked/Bailed/Failed."""

    def __init__(self, services: Services, wf: Workflow, state: RunState) -> None:
        self.s = services
        self.wf = wf
        self.state = state
        self.run = state.run
        self.input = wf.input_adapter.validate_python(state.run.input)
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
        out = await self.sequence(self.wf, self.input, "")
        return coerce(out, self.wf.output)

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
            path = paths.of_composite(path, node.name)
            gate = asyncio.Semaphore(node.concurrency)

            async def item(k: int, v: Any) -> Any:
                async with gate:
                    return await self.node(node.body, v, paths.in_item(path, k))

            return await self.gather([item(k, v) for k, v in enumerate(value)])
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover - checked at registration

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

    async def commit(self, write: StepWrite | None = None) -> None:
        """Commit ``write`` together with any buffered step results."""
        writes, self.unflushed = self.unflushed, []
        self.must_flush = False
        if write is not None:
            writes.append(write)
        if not writes:
            return
        await self.s.store.commit_steps(self.run.id, self.s.owner, writes, self.s.clock())
        if any(w.outbox for w in writes):
            self.s.on_commit()
        if any(s.expires_at is not None or s.reminders for w in writes for s in w.interrupts):
            self.s.on_timers()

    def output_of(self, name: str) -> Any:
        for path, rec in self.state.steps.items():
            if rec.name == name and rec.status is StepStatus.COMPLETED:
                raw = self.state.step_outputs.get(path)
                return None if raw is None else json.loads(raw)
        if name in self.outputs:
            return json.loads(self.outputs[name])
        raise LookupError(f"step {name!r} has no recorded output in run {self.run.id}")

    def context(self, sd: StepDef[Any, Any], path: str, attempt: int) -> StepContext[Any, Any]:
        return StepContext(
            run_id=self.run.id,
            workflow=self.wf.name,
            step=sd.name,
            path=path,
            attempt=attempt,
            requester=self.run.requester,
            workflow_input=self.input,
            interrupts=self.state.interrupts,
            suspend_model=sd.suspend_model,
            resume_model=sd.resume_model,
            output_of=self.output_of,
            now=self.s.clock,
            events=sd.events,
        )

    async def step(self, sd: StepDef[Any, Any], value: Any, path: str) -> Any:
        rec = self.state.steps.get(path)
        if rec is not None:
            raw = self.state.step_outputs.get(path)
            if rec.status is StepStatus.COMPLETED:
                return sd.output_adapter.validate_json(raw or "null")
            if rec.status is StepStatus.SUSPENDED:
                waiting = self.state.interrupts.get(json.loads(raw or "{}").get("waiting_on", ""))
                if waiting is None or waiting.status is InterruptStatus.PENDING:
                    raise Parked(path)
                if sd.resume_to == "output":
                    return await self.answer_as_output(sd, path, waiting.id)
        return await self.execute(sd, value, path)

    async def answer_as_output(self, sd: StepDef[Any, Any], path: str, iid: str) -> Any:
        started = self.s.clock()
        ctx = self.context(sd, path, 1)
        try:
            data = ctx._settle(self.state.interrupts[iid])
            out = coerce(
                sd.resume_model.model_validate(data) if sd.resume_model else data, sd.output_type
            )
        except BailSignal as sig:
            await self.bailed(sd, path, started, 1, sig.reason)
            raise Bailed(sig.reason) from None
        except (InterruptExpired, ValidationError) as exc:
            await self.failed(sd, path, started, 1, exc, [])
            raise Failed(error_info(exc)) from exc
        await self.completed(sd, path, started, 1, out, [], derived=True)
        return out

    async def execute(self, sd: StepDef[Any, Any], value: Any, path: str) -> Any:
        started = self.s.clock()
        notes: list[EventWrite] = []
        attempt = 0
        while True:
            attempt += 1
            if self.must_flush:  # earlier results are durable before this step's code runs
                await self.commit()
            ctx = self.context(sd, path, attempt)
            try:
                call = sd.fn(value, ctx) if sd.wants_ctx else sd.fn(value)
                if sd.timeout is not None:
                    result = await asyncio.wait_for(call, sd.timeout.total_seconds())
                else:
                    result = await call
                out = sd.output_adapter.validate_python(result)
            except SuspendSignal as sig:
                clash = self.claim(sig.spec, sd, path)
                if clash is not None:
                    await self.failed(sd, path, started, attempt, clash, notes)
                    raise Failed(error_info(clash)) from None
                await self.suspended(sd, path, started, attempt, sig.spec, ctx)
                raise Parked(path) from None
            except BailSignal as sig:
                await self.bailed(sd, path, started, attempt, sig.reason)
                raise Bailed(sig.reason) from None
            except ValidationError as exc:  # the step returned the wrong shape: a bug, no retry
                await self.failed(sd, path, started, attempt, exc, notes)
                raise Failed(error_info(exc)) from exc
            except Exception as exc:
                retryable = isinstance(exc, sd.retry.on) and not isinstance(exc, InterruptExpired)
                if retryable and attempt < sd.retry.attempts:
                    delay = sd.retry.delay(attempt)
                    notes.append(
                        EventWrite(
                            EventType.STEP_RETRYING,
                            {
                                "step": sd.name,
                                "path": path,
                                "attempt": attempt,
                                "error": f"{type(exc).__qualname__}: {exc}",
                                "delay": delay,
                            },
                            at=self.s.clock(),
                        )
                    )
                    await asyncio.sleep(delay)
                    continue
                await self.failed(sd, path, started, attempt, exc, notes)
                raise Failed(error_info(exc)) from exc
            await self.completed(sd, path, started, attempt, out, notes)
            return out

    def claim(
        self, spec: InterruptSpec | None, sd: StepDef[Any, Any], path: str
    ) -> ValueError | None:
        """Reserve a new interrupt's id for this step; the error if a sibling took it."""
        if spec is None:
            return None
        other_path, other_step = self.claimed.setdefault(spec.id, (path, sd.name))
        if other_path == path:
            return None
        return ValueError(
            f"interrupt id {spec.id!r} is already used by step {other_step!r} of this run; "
            "interrupt ids must be unique per run (include the item in ids used in loops)"
        )

    def _started(self, sd: StepDef[Any, Any], path: str, started: float) -> EventWrite:
        return EventWrite(EventType.STEP_STARTED, {"step": sd.name, "path": path}, at=started)

    async def completed(
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        out: Any,
        notes: list[EventWrite],
        *,
        derived: bool = False,
    ) -> None:
        raw = dump_json(out, sd.output_type)
        self.must_flush = self.must_flush or not derived
        finished = self.s.clock()  # stamped now: the record may be committed later, batched
        events = [
            self._started(sd, path, started),
            *notes,
            EventWrite(EventType.STEP_COMPLETED, {"step": sd.name, "path": path}, at=finished),
        ]
        self.unflushed.append(
            StepWrite(
                path,
                sd.name,
                StepStatus.COMPLETED,
                raw,
                None,
                attempts,
                started,
                finished,
                events=events,
            )
        )
        self.outputs.setdefault(sd.name, raw)

    async def failed(
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        exc: BaseException,
        notes: list[EventWrite],
    ) -> None:
        info = error_info(exc)
        events = [
            self._started(sd, path, started),
            *notes,
            EventWrite(
                EventType.STEP_FAILED, {"step": sd.name, "path": path, "error": info.model_dump()}
            ),
        ]
        await self.commit(
            StepWrite(
                path,
                sd.name,
                StepStatus.FAILED,
                None,
                info.model_dump_json(),
                attempts,
                started,
                self.s.clock(),
                events=events,
            )
        )

    async def bailed(
        self, sd: StepDef[Any, Any], path: str, started: float, attempts: int, reason: str
    ) -> None:
        events = [EventWrite(EventType.BAILED, {"step": sd.name, "path": path, "reason": reason})]
        await self.commit(
            StepWrite(
                path,
                sd.name,
                StepStatus.BAILED,
                json.dumps(reason),
                None,
                attempts,
                started,
                self.s.clock(),
                events=events,
            )
        )

    async def suspended(
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        spec: InterruptSpec | None,
        ctx: StepContext[Any, Any],
    ) -> None:
        if spec is None:
            # Waiting on an interrupt that already exists: find the pending one it asked for.
            pending = [
                i
                for i in self.state.interrupts.values()
                if i.path == path and i.status is InterruptStatus.PENDING
            ]
            rec = self.state.steps.get(path)
            if rec is not None and rec.status is StepStatus.SUSPENDED or not pending:
                return
            waiting_on = pending[-1].id
            await self.commit(
                StepWrite(
                    path,
                    sd.name,
                    StepStatus.SUSPENDED,
                    json.dumps({"waiting_on": waiting_on}),
                    None,
                    attempts,
                    started,
                    self.s.clock(),
                )
            )
            return
        spec.title = spec.title or sd.title  # the stored interrupt gets the default title too
        info = {
            "interrupt_id": spec.id,
            "kind": spec.kind.value,
            "workflow": self.wf.name,
            "version": self.wf.version,
            "step": sd.name,
            "title": spec.title or sd.title,
            "path": path,
            "payload": spec.payload,
            "event": spec.event,
            "responders": spec.responders,
            "quorum": spec.quorum,
            "allow_requester": spec.allow_requester,
            "requester": self.run.requester,
            "expires_at": spec.expires_at,
            "on_expiry": spec.on_expiry.value if spec.on_expiry else None,
            "channel": spec.channel,
            "meta": {k: v for k, v in spec.meta.items() if not k.startswith("_")},
        }
        events = [self._started(sd, path, started), EventWrite(EventType.SUSPENDED, info)]
        outbox = [OutboxWrite("interrupt.created", spec.id, info)]
        await self.commit(
            StepWrite(
                path,
                sd.name,
                StepStatus.SUSPENDED,
                json.dumps({"waiting_on": spec.id}),
                None,
                attempts,
                started,
                self.s.clock(),
                interrupts=[spec],
                events=events,
                outbox=outbox,
            )
        )
