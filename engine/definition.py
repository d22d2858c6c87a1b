"""Defining workflows: the ``@step`` decorator and the ``Workflow`` builder.

A workflow is a typed graph, not free-form orchestration code: a sequence of nodes,
each a step, a sub-workflow, a conditional branch, parallel branches or a foreach.
Because the graph is data, the engine checks it when it is registered (unknown
steps, cycles, a step's output not fitting the next step's input, duplicate names;
see ``engine.checks``) and records progress by position, so a resumed run continues
exactly where it was, with no replay of user code and no determinism rules for the
orchestration.

Steps are ordinary async functions ``async def name(input: In[, ctx]) -> Out``.
Code inside a step runs at least once: a crash before its result is committed
runs it again, so external calls should use ``ctx.idempotency_key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, TypeAdapter

from engine.context import check_quorum
from engine.errors import DefinitionError
from engine.typecheck import fits, merge_model, read_signature

In = TypeVar("In")
Out = TypeVar("Out")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

ResumeKind = Literal["step", "output", "event"]


@dataclass(frozen=True)
class ResumeTo:
    """Where an answer goes when an interrupt of the step is resolved.

    ``"step"`` and ``"output"`` (plain strings) re-run the step or make the answer its
    output. ``ResumeTo.event(name)`` delivers the answer to the run as the named event
    instead: the step that asked completes as soon as it asked (its output is the
    payload it showed, validated against its output type, or None for ``-> None``),
    and the step that waits for the event (``ctx.wait_for_event(name, Model)``,
    declared with ``@step(events={name: Model})``) receives the answer, once, typed
    like any event. Checked at registration: some step of the workflow must wait for
    the event with a model the resume model fits.
    """

    kind: ResumeKind
    name: str | None = None

    @classmethod
    def event(cls, name: str) -> ResumeTo:
        """Deliver the answer as the event ``name`` to the step waiting for it."""
        if not name:
            raise ValueError("ResumeTo.event needs an event name")
        return cls("event", name)


OnItemError = Literal["stop", "collect"]


@dataclass(frozen=True)
class Retry:
    """Retry policy of a step: attempts with exponential backoff for chosen exceptions.

    Args:
        attempts: total tries, including the first one.
        backoff: delay before the second try, in seconds; doubled each time after.
        max_backoff: upper bound of one delay, in seconds.
        on: exception types that are retried; anything else fails at once.
    """

    attempts: int = 1
    backoff: float = 0.5
    max_backoff: float = 30.0
    on: tuple[type[BaseException], ...] = (Exception,)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))


class StepDef(Generic[In, Out]):
    """A registered step: the function plus its typed contract and options."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[Out]],
        *,
        name: str,
        input_type: Any,
        output_type: Any,
        wants_ctx: bool,
        suspend_model: type[BaseModel] | None,
        resume_model: type[BaseModel] | None,
        resume_to: ResumeKind,
        retry: Retry,
        timeout: timedelta | None,
        title: str | None,
        events: Mapping[str, type[BaseModel]] | None = None,
        quorum: int = 1,
        bail: type[BaseModel] | None = None,
        max_resumes: int | None = None,
        resume_event: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.input_type = input_type
        self.output_type = output_type
        self.wants_ctx = wants_ctx
        self.suspend_model = suspend_model
        self.resume_model = resume_model
        self.resume_to = resume_to
        self.retry = retry
        self.timeout = timeout
        self.title = title or name.replace("_", " ").capitalize()
        self.events: dict[str, type[BaseModel]] = dict(events or {})
        self.quorum = quorum
        self.bail_model = bail
        self.max_resumes = max_resumes
        self.resume_event = resume_event  # with resume_to == "event"
        self.input_adapter: TypeAdapter[Any] = TypeAdapter(input_type)
        self.output_adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    async def __call__(self, *args: Any, **kwargs: Any) -> Out:
        """Call the step's function directly (handy in unit tests of the step itself)."""
        return await self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@overload
def step(fn: F, /) -> StepDef[Any, Any]: ...


@overload
def step(
    *,
    name: str | None = None,
    suspend: type[BaseModel] | None = None,
    resume: type[BaseModel] | None = None,
    resume_to: Literal["step", "output"] | ResumeTo = "step",
    retries: int | Retry = 0,
    timeout: timedelta | float | None = None,
    title: str | None = None,
    events: Mapping[str, type[BaseModel]] | None = None,
    quorum: int = 1,
    bail: type[BaseModel] | None = None,
    max_resumes: int | None = None,
) -> Callable[[F], StepDef[Any, Any]]: ...


def step(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    suspend: type[BaseModel] | None = None,
    resume: type[BaseModel] | None = None,
    resume_to: Literal["step", "output"] | ResumeTo = "step",
    retries: int | Retry = 0,
    timeout: timedelta | float | None = None,
    title: str | None = None,
    events: Mapping[str, type[BaseModel]] | None = None,
    quorum: int = 1,
    bail: type[BaseModel] | None = None,
    max_resumes: int | None = None,
) -> StepDef[Any, Any] | Callable[[F], StepDef[Any, Any]]:
    """Turn an async function into a workflow step.

    Use bare (``@step``) or with options (``@step(retries=3)``). The first parameter's
    annotation is the step's input type and the return annotation its output type. A
    step that waits for a person takes ``ctx: StepContext[Shown, Answer]``, or names
    the models with ``suspend=``/``resume=``.

    Args:
        name: step name (default: the function name); unique within a workflow.
        suspend: model of what the person is shown (the suspend payload).
        resume: model of what the person must supply.
        resume_to: ``"step"`` re-runs the step after the answer, and ``ctx.suspend``
            returns it; ``"output"`` makes the validated answer the step's output;
            ``ResumeTo.event(name)`` delivers it to the step waiting for that event
            (see ``ResumeTo``).
        retries: extra attempts (an int) or a full ``Retry`` policy.
        timeout: limit of one attempt (a timedelta or seconds).
        title: human title shown with the step's interrupts.
        events: named events the step may wait for (``ctx.wait_for_event``) and the
            model each one's data is validated against.
        quorum: the default quorum of this step's ``ctx.suspend`` calls. Declaring it
            here lets the engine check at decoration that a quorum above 1 has a resume
            model with a bool ``approved`` field (a quorum passed only to
            ``ctx.suspend`` is checked when it is called, before anything is written).
        bail: the model of the typed result ``ctx.bail(reason, result=...)`` records
            (validated; the rejected run's ``Run.output``). Without it, a result must
            be a pydantic model instance.
        max_resumes: how many times the step may be resumed (each ``suspend``,
            ``wait_for_event`` or ``sleep`` that parks it counts once); asking again
            after that fails the step with ``TooManyResumes``, never retried. Counted
            from the step's recorded interrupts, so crashes do not reset it. None: no cap.

    Raises:
        DefinitionError: an unknown ``resume_to``, missing models, ``retries < 0``, or a
            quorum the resume model cannot count.
    """

    def decorate(f: F) -> StepDef[Any, Any]:
        in_t, out_t, wants_ctx, s_model, r_model = read_signature(f)
        where = f"step {name or f.__name__}"
        s_model = merge_model(where, "suspend", suspend, s_model)
        r_model = merge_model(where, "resume", resume, r_model)
        if (s_model is None) != (r_model is None):
            raise DefinitionError(where, "declare both a suspend model and a resume model")
        kind, event = (
            (resume_to.kind, resume_to.name)
            if isinstance(resume_to, ResumeTo)
            else (resume_to, None)
        )
        if kind not in ("step", "output", "event"):
            raise DefinitionError(
                where,
                f"resume_to={resume_to!r} is not one of 'step', 'output', ResumeTo.event(name)",
            )
        if kind == "event":
            check_event_asker(where, s_model, r_model, out_t)
        check_quorum(where, quorum, r_model)
        if max_resumes is not None and max_resumes < 1:
            raise DefinitionError(where, f"max_resumes must be >= 1 (or None), got {max_resumes}")
        if resume_to == "output":
            if r_model is None:
                raise DefinitionError(where, "resume_to='output' needs a resume model")
            problem = fits(r_model, out_t)
            if problem:
                raise DefinitionError(where, f"resume_to='output' but {problem}")
        retry = retries if isinstance(retries, Retry) else Retry(attempts=retries + 1)
        if retry.attempts < 1:
            raise DefinitionError(where, "retries must be >= 0")
        t = timedelta(seconds=timeout) if isinstance(timeout, int | float) else timeout
        return StepDef(
            f,
            name=name or f.__name__,
            input_type=in_t,
            output_type=out_t,
            wants_ctx=wants_ctx,
            suspend_model=s_model,
            resume_model=r_model,
            resume_to=kind,
            retry=retry,
            timeout=t,
            title=title,
            events=events,
            quorum=quorum,
            bail=bail,
            max_resumes=max_resumes,
            resume_event=event,
        )

    return decorate(fn) if fn is not None else decorate


def check_event_asker(
    where: str, shown: type[BaseModel] | None, answer: type[BaseModel] | None, out_t: Any
) -> None:
    """A ``ResumeTo.event`` step needs a resume model, and outputs what it showed (or None)."""
    if answer is None or shown is None:
        raise DefinitionError(where, "resume_to=ResumeTo.event(...) needs a resume model")
    if out_t is None or out_t is type(None):
        return
    problem = fits(shown, out_t)
    if problem:
        raise DefinitionError(
            where,
            "resume_to=ResumeTo.event(...) completes the step with the payload it showed, "
            f"but {problem}; return the suspend model or None",
        )


# --- composition nodes -------------------------------------------------------------------

Node = "StepDef[Any, Any] | Workflow | str | Branch | Parallel | Foreach"


@dataclass
class Branch:
    """Run the first case whose condition holds on the previous output."""

    cases: list[tuple[Callable[[Any], bool], Any]]
    otherwise: Any = None
    name: str = "branch"


@dataclass
class Parallel:
    """Run branches concurrently; the output has one field per branch name."""

    branches: list[Any]
    name: str = "parallel"
    output_model: type[BaseModel] | None = None


@dataclass
class Foreach:
    """Run a step or sub-workflow for each item of the previous (list) output."""

    body: Any
    concurrency: int = 1
    name: str = "foreach"
    on_item_error: OnItemError = "stop"
    batch_size: int | None = None


@dataclass
class Workflow:
    """A named, versioned, typed workflow built from steps.

    Example::

        deploy = (
            Workflow("deploy", version=1, input=DeployRequest, output=DeployResult)
            .then(plan)
            .then(approve)
            .then(release)
        )

    Args:
        name: the workflow's name (what ``engine.start`` takes).
        version: runs are pinned to the version they started on.
        input: the input model (validated on start).
        output: the output model (validated when the run completes). Left out, it is
            the last node's output type, found at registration (a last branch whose
            cases output different types needs it declared: ``DefinitionError``).
    """

    name: str
    version: str | int = 1
    input: Any = None
    output: Any = None
    nodes: list[Any] = field(default_factory=list)
    title: str | None = None

    def __post_init__(self) -> None:
        self.version = str(self.version)
        self._checked = False
        self.input_adapter: TypeAdapter[Any] = TypeAdapter(self.input)
        self.output_adapter: TypeAdapter[Any] = TypeAdapter(self.output)

    @property
    def key(self) -> tuple[str, str]:
        """(name, version): what a run is pinned to."""
        return (self.name, str(self.version))

    def then(self, node: Any) -> Workflow:
        """Append a step, a sub-workflow (object or registered name) or a composite node."""
        self._checked = False
        self.nodes.append(node)
        return self

    def branch(
        self,
        *cases: tuple[Callable[[Any], bool], Any],
        otherwise: Any = None,
        name: str | None = None,
    ) -> Workflow:
        """Append a conditional: ``(condition, node)`` pairs tried in order.

        The chosen case is recorded, so a resumed run never re-decides it.
        """
        return self.then(Branch(list(cases), otherwise, name or f"branch{len(self.nodes)}"))

    def parallel(self, *branches: Any, name: str | None = None) -> Workflow:
        """Append parallel branches; all run, and their suspends are pending at once.

        The output is a model with one field per branch (the branch's name).
        """
        return self.then(Parallel(list(branches), name or f"parallel{len(self.nodes)}"))

    def foreach(
        self,
        body: Any,
        *,
        concurrency: int = 1,
        name: str | None = None,
        on_item_error: OnItemError = "stop",
        batch_size: int | None = None,
    ) -> Workflow:
        """Append a loop over the previous output (a list); the output lists the body's
        outputs in item order.

        Args:
            body: a step or sub-workflow run for each item.
            concurrency: how many items run at once; an item waiting for a person keeps
                its slot, so ``concurrency=1`` asks one item at a time, in order.
            name: the node's name (default: ``foreach<position>``).
            on_item_error: ``"stop"`` (the first failure or bail ends the loop and the
                run) or ``"collect"``: failures do not stop the others and the output is
                ``list[ItemResult[Out]]``, one per item (``output`` or ``error``).
            batch_size: hand the body lists of up to this many items (its input must
                accept ``list[Item]``, checked at registration); one output per batch.

        Inside the body, ``ctx.skip_item()`` drops the item from the output and
        ``ctx.break_loop()`` ends the loop there (later items are dropped too).
        """
        return self.then(
            Foreach(
                body,
                concurrency,
                name or f"foreach{len(self.nodes)}",
                on_item_error,
                batch_size,
            )
        )


def node_name(node: Any) -> str:
    """The name a node is known by in paths and error messages."""
    if isinstance(node, StepDef):
        return node.name
    if isinstance(node, Workflow):
        return node.name
    if isinstance(node, str):
        return node.split("@")[0]
    return str(node.name)
