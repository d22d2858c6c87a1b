"""Running one step of a run: attempts, retries, timeouts, suspends and recorded results.

A step's attempt is recorded (status ``running``, its attempt number, a
``step_started`` event) before the step's code runs, in the same commit as any
results still buffered, so live observers see the step start and a crash does not
reset the attempt count: recovery continues from the recorded attempt.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine import loops
from engine.context import BailSignal, InterruptSpec, LoopSignal, StepContext, SuspendSignal
from engine.definition import StepDef, Workflow
from engine.emit import Emitter
from engine.errors import (
    DefinitionError,
    InterruptExpired,
    StepOutputInvalid,
    StepTimedOut,
    TooManyResumes,
    field_errors,
)
from engine.models import ErrorInfo, EventType, Interrupt, InterruptStatus, StepStatus
from engine.paths import index_steps
from engine.resuming import awaited, mark_asker, over_cap
from engine.store.base import EventWrite, RunState, StepWrite
from engine.store.rows import loads
from engine.suspending import Suspending

LIVE_AFTER = 0.02
"""Seconds after which a running step without retries has its start committed (a step
with retries, or one following buffered results, has it committed before its code runs)."""

NOT_RETRIED = (InterruptExpired, DefinitionError, StepOutputInvalid, TooManyResumes)
"""Errors that fail a step at once, whatever its Retry policy: retrying cannot help."""


class Parked(Exception):
    """Some path of the run waits on an interrupt."""


class Bailed(Exception):
    """A step bailed: the run ends as rejected."""

    def __init__(self, reason: str, result: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


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


def validated(adapter: TypeAdapter[Any], value: Any, where: str) -> tuple[Any, str]:
    """``value`` fully validated against ``adapter``'s type, and its JSON.

    Validated twice on purpose: once as given (so a value of the wrong type is refused),
    then from its JSON, because pydantic trusts model instances as they are and one
    built with ``model_construct`` (or mutated) may break the model's constraints.

    Raises:
        StepOutputInvalid: the value does not fit (``errors`` per field).
    """
    try:
        out = adapter.validate_python(value)
        raw = adapter.dump_json(out, warnings=False)
        return adapter.validate_json(raw), raw.decode()
    except ValidationError as exc:
        raise StepOutputInvalid(where, field_errors(exc)) from None


@dataclass
class _Start:
    """An attempt's ``running`` record and whether it was committed (or is being) yet."""

    write: StepWrite
    committed: bool
    pending: asyncio.Task[None] | None = None  # its commit in flight (LIVE_AFTER)

    def unrecorded(self) -> list[EventWrite]:
        """The start's events if it was not committed (they go with the result then)."""
        return [] if self.committed else list(self.write.events)


class StepRunner(Suspending):
    """The step-level half of ``Execution`` (the graph-level half lives there)."""

    s: Any  # engine.execution.Services (not imported: that module imports this one)
    wf: Workflow
    state: RunState
    input: Any
    claimed: dict[str, tuple[str, str]]
    outputs: dict[str, str]
    unflushed: list[StepWrite]
    must_flush: bool
    _by_name: dict[str, StepDef[Any, Any]] | None = None
    resume_events: frozenset[str] = frozenset()  # set by Execution (resuming.resume_events)

    async def commit(self, write: StepWrite | None = None) -> None:  # pragma: no cover
        """Commit ``write`` with buffered results (implemented by ``Execution``)."""
        raise NotImplementedError

    def output_of(self, name: str) -> Any:
        """The recorded output of step ``name``, as an instance of its output type."""
        if self._by_name is None:
            self._by_name = {sd.name: sd for sd in index_steps(self.wf).values()}
        sd = self._by_name.get(name)
        raw: str | None = None
        found = False
        for path, rec in self.state.steps.items():
            if rec.name == name and rec.status is StepStatus.COMPLETED:
                raw, found = self.state.step_outputs.get(path), True
                break
        if not found and name in self.outputs:
            raw, found = self.outputs[name], True
        if not found:
            raise LookupError(f"step {name!r} has no recorded output in run {self.state.run.id}")
        if sd is None:  # pragma: no cover - names come from this workflow's graph
            return None if raw is None else loads(raw)
        return sd.output_adapter.validate_json(raw or "null")

    def context(
        self,
        sd: StepDef[Any, Any],
        path: str,
        attempt: int,
        resuming: Interrupt | None = None,
    ) -> StepContext[Any, Any]:
        """The ``ctx`` handed to one attempt of a step."""
        return StepContext(
            run_id=self.state.run.id,
            workflow=self.wf.name,
            step=sd.name,
            path=path,
            attempt=attempt,
            requester=self.state.run.requester,
            workflow_input=self.input,
            interrupts=self.state.interrupts,
            suspend_model=sd.suspend_model,
            resume_model=sd.resume_model,
            output_of=self.output_of,
            now=self.s.clock,
            events=sd.events,
            quorum=sd.quorum,
            resuming=resuming,
            bail_model=sd.bail_model,
            resume_events=self.resume_events,
        )

    async def step(self, sd: StepDef[Any, Any], value: Any, path: str) -> Any:
        """Run (or read back) the step at ``path``; returns its output."""
        rec = self.state.steps.get(path)
        done = 0
        resuming: Interrupt | None = None
        if rec is not None:
            raw = self.state.step_outputs.get(path)
            if rec.status is StepStatus.COMPLETED:
                return sd.output_adapter.validate_json(raw or "null")
            if rec.status is StepStatus.SKIPPED:  # ctx.skip_item()/break_loop(), recorded
                raise loops.replayed(raw, path)
            if rec.status is StepStatus.FAILED and rec.error is not None:
                raise Failed(rec.error)  # a collected foreach item: fails the same again
            if rec.status is StepStatus.SUSPENDED:
                waiting = awaited(loads(raw or "{}"), self.state.interrupts)
                if sd.resume_event is not None and waiting is not None:  # asked: it is done
                    return self.asked(sd, path, rec.attempts, waiting.payload)
                if waiting is None or waiting.status is InterruptStatus.PENDING:
                    raise Parked(path)
                if sd.resume_to == "output":
                    return await self.answer_as_output(sd, path, waiting.id)
                resuming = waiting
            if rec.status is StepStatus.RUNNING:
                done = rec.attempts  # cut off mid-attempt (a crash): continue the count
        return await self.execute(sd, value, path, done, resuming)

    async def answer_as_output(self, sd: StepDef[Any, Any], path: str, iid: str) -> Any:
        """``resume_to="output"``: the answer becomes the output; the body does not run."""
        started = self.s.clock()
        ctx = self.context(sd, path, 1)
        try:
            data = ctx._settle(self.state.interrupts[iid])
            answer = sd.resume_model.model_validate(data) if sd.resume_model else data
            out, raw = validated(sd.output_adapter, answer, f"step {sd.name!r}")
        except BailSignal as sig:
            await self.bailed(sd, path, started, 1, sig)
            raise Bailed(sig.reason, sig.result) from None
        except (InterruptExpired, ValidationError, StepOutputInvalid) as exc:
            await self.failed(sd, path, started, 1, exc, [])
            raise Failed(error_info(exc)) from exc
        self.completed(sd, path, started, 1, raw, [], derived=True)
        return out

    async def execute(
        self,
        sd: StepDef[Any, Any],
        value: Any,
        path: str,
        done: int = 0,
        resuming: Interrupt | None = None,
    ) -> Any:
        """Run the step's code, attempt after attempt, and record how it ended."""
        started = self.s.clock()
        notes: list[EventWrite] = []
        attempt = done
        while True:
            attempt += 1
            info = {"step": sd.name, "path": path, "attempt": attempt}
            begin = StepWrite(
                path,
                sd.name,
                StepStatus.RUNNING,
                None,
                None,
                attempt,
                started,
                started,
                events=[*notes, EventWrite(EventType.STEP_STARTED, info, at=self.s.clock())],
            )
            notes = []
            ctx = self.context(sd, path, attempt, resuming)
            start = _Start(begin, await self._record_start(sd, begin))
            ctx._emitter = Emitter(self.commit, start, self.s.clock)
            parked = False
            try:
                result = await self._attempt(sd, value, ctx, start)
                out, raw = validated(sd.output_adapter, result, f"step {sd.name!r}")
            except SuspendSignal as sig:
                notes = start.unrecorded()
                clash = self.claim(sig.spec, sd, path) or over_cap(
                    sd, path, sig.spec, self.state.interrupts
                )
                if clash is not None:
                    await self.failed(sd, path, started, attempt, clash, notes)
                    raise Failed(error_info(clash)) from None
                asker = mark_asker(sd, sig.spec)
                self.suspended(sd, path, started, attempt, sig.spec, notes, sig.waiting_for)
                if asker and sig.spec is not None:
                    return self.asked(sd, path, attempt, sig.spec.payload)
                parked = True  # raised below, outside the handler (see the end)
            except BailSignal as sig:
                await self.bailed(sd, path, started, attempt, sig, start.unrecorded())
                raise Bailed(sig.reason, sig.result) from None
            except LoopSignal as sig:
                times = (started, self.s.clock())
                notes = start.unrecorded()
                raise await loops.record(
                    self.commit, sd.name, path, times, attempt, sig.action, notes
                ) from None
            except Exception as exc:
                notes = start.unrecorded()
                retryable = isinstance(exc, sd.retry.on) and not isinstance(exc, NOT_RETRIED)
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
            if parked:
                # Raised here rather than in the handler, so it does not carry the signal
                # (and its traceback's frames) as its context up to the driver.
                raise Parked(path)
            self.completed(sd, path, started, attempt, raw, start.unrecorded())
            return out

    async def _record_start(self, sd: StepDef[Any, Any], begin: StepWrite) -> bool:
        """Commit the attempt's ``running`` record now if that costs no extra commit or
        the attempt count must be durable (the step has retries); True if committed."""
        if sd.retry.attempts > 1 or self.must_flush:
            await self.commit(begin)
            return True
        return False

    async def _attempt(
        self,
        sd: StepDef[Any, Any],
        value: Any,
        ctx: StepContext[Any, Any],
        start: _Start,
    ) -> Any:
        """Run the step's code once, under its timeout.

        If the start was not recorded yet, it is committed once the code has run for
        ``LIVE_AFTER`` seconds, so live observers see every step that takes longer;
        a quicker step has its start recorded with its result (no extra commit).
        """
        handle: asyncio.TimerHandle | None = None
        if not start.committed:
            loop = asyncio.get_running_loop()

            def commit_start() -> None:
                if not start.committed:  # ctx.emit may have committed it already
                    start.committed = True
                    start.pending = loop.create_task(self.commit(start.write))

            handle = loop.call_later(LIVE_AFTER, commit_start)
        try:
            call = sd.fn(value, ctx) if sd.wants_ctx else sd.fn(value)
            if sd.timeout is None:
                return await call
            limit = sd.timeout.total_seconds()
            try:
                async with asyncio.timeout(limit) as cm:
                    return await call
            except TimeoutError:
                if cm.expired():
                    raise StepTimedOut(sd.name, limit, ctx.attempt) from None
                raise
        finally:
            if handle is not None:
                handle.cancel()
            if start.pending is not None:
                await start.pending  # the start is committed before anything the attempt records

    def claim(
        self, spec: InterruptSpec | None, sd: StepDef[Any, Any], path: str
    ) -> Exception | None:
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

    def completed(
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        raw: str,
        notes: list[EventWrite],
        *,
        derived: bool = False,
    ) -> None:
        """Buffer a completed result (committed before any more user code runs)."""
        self.must_flush = self.must_flush or not derived
        finished = self.s.clock()  # stamped now: the record may be committed later, batched
        events = [
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
        """Record a failed step."""
        info = error_info(exc)
        events = [
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
        self,
        sd: StepDef[Any, Any],
        path: str,
        started: float,
        attempts: int,
        sig: BailSignal,
        notes: list[EventWrite] = (),  # type: ignore[assignment]
    ) -> None:
        """Record a bailed step (with its typed result, if it gave one)."""
        data: dict[str, Any] = {"step": sd.name, "path": path, "reason": sig.reason}
        if sig.result is not None:
            data["result"] = sig.result
        await self.commit(
            StepWrite(
                path,
                sd.name,
                StepStatus.BAILED,
                json.dumps(sig.reason),
                None,
                attempts,
                started,
                self.s.clock(),
                events=[*notes, EventWrite(EventType.BAILED, data)],
            )
        )

    def asked(self, sd: StepDef[Any, Any], path: str, attempts: int, payload: Any) -> Any:
        """A ``ResumeTo.event`` step asked: it completes with what it showed (or None)."""
        shown = None if sd.output_type in (None, type(None)) else payload
        out, raw = validated(sd.output_adapter, shown, f"step {sd.name!r}")
        self.completed(sd, path, self.s.clock(), attempts, raw, [], derived=True)
        return out
