"""Workflow and step definitions are checked when they are registered, not when they run."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from engine import DefinitionError, Engine, StepContext, Workflow, open_store, step
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import Approval, Done, Note, Req, Shown, settle


class Named(BaseModel):
    name: str


class Counted(BaseModel):
    name: str
    count: int


class Other(BaseModel):
    title: str


class Verdict(BaseModel):
    name: str
    approved: bool


class BadCount(BaseModel):
    name: str
    count: str


@step
async def to_named(r: Req) -> Named:
    return Named(name=r.name)


@step
async def to_counted(n: Named) -> Counted:
    return Counted(name=n.name, count=1)


@step
async def needs_counted(c: Counted) -> Done:
    return Done(name=c.name)


@step
async def named_to_done(n: Named) -> Done:
    return Done(name=n.name)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """An engine that is never opened: registration needs no database."""
    return Engine(open_store(str(tmp_path / "unused.db")))


def register(engine: Engine, *wfs: Workflow) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        engine.register(*wfs)
    return info.value


async def test_undecorated_function_is_an_unknown_step(engine: Engine) -> None:
    async def plain(r: Req) -> Done:
        return Done(name=r.name)

    wf = Workflow("w", input=Req, output=Done).then(plain)
    err = register(engine, wf)
    assert err.where == "workflow 'w'"
    assert "unknown step 'plain'" in str(err)
    assert "@step" in str(err)


async def test_unknown_name_is_reported(engine: Engine) -> None:
    wf = Workflow("w", input=Req, output=Named).then(to_named).then("no_such_child")
    err = register(engine, wf)
    assert "unknown step or workflow 'no_such_child'" in str(err)


async def test_object_cycle_between_sub_workflows_is_reported(engine: Engine) -> None:
    a = Workflow("A", input=Named, output=Named)
    b = Workflow("B", input=Named, output=Named)
    a.then(b)
    b.then(a)
    err = register(engine, a)
    assert "sub-workflow cycle: A@1 -> B@1 -> A@1" in str(err)


async def test_cycle_by_name_is_reported_as_a_cycle(engine: Engine) -> None:
    @step
    async def touch(n: Named) -> Named:
        return n

    a = Workflow("A", input=Named, output=Named).then(touch).then("B")
    b = Workflow("B", input=Named, output=Named).then(touch).then(a)
    err = register(engine, b)
    assert "sub-workflow cycle" in str(err)
    assert "B@1 -> A@1 -> B@1" in str(err)
    with pytest.raises(Exception, match="not registered"):
        engine.registry.get("B")


async def test_a_new_version_may_include_the_previous_one_by_name(
    engine_factory: EngineFactory,
) -> None:
    v1 = Workflow("w", version=1, input=Req, output=Named).then(to_named)

    @step
    async def shout(n: Named) -> Named:
        return Named(name=n.name.upper())

    v2 = Workflow("w", version=2, input=Req, output=Named).then("w").then(shout)
    engine = await engine_factory(v1, v2)
    run = await settle(engine, await engine.start("w", {"name": "ann"}))
    assert run.version == "2"
    assert run.output == {"name": "ANN"}


async def test_output_missing_a_field_of_the_next_input_is_rejected(engine: Engine) -> None:
    wf = Workflow("w", input=Req, output=Done).then(to_named).then(needs_counted)
    err = register(engine, wf)
    assert "input of step 'needs_counted'" in str(err)
    assert "Counted needs field 'count', which Named does not have" in str(err)


async def test_output_with_a_wrong_field_type_is_rejected(engine: Engine) -> None:
    @step
    async def bad(r: Req) -> BadCount:
        return BadCount(name=r.name, count="x")

    wf = Workflow("w", input=Req, output=Done).then(bad).then(needs_counted)
    err = register(engine, wf)
    assert "field 'count': str is not int" in str(err)


async def test_output_with_extra_fields_fits_a_smaller_input(engine_factory: EngineFactory) -> None:
    wf = Workflow("w", input=Req, output=Done).then(to_named).then(to_counted).then(named_to_done)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", {"name": "x"}))
    assert run.output == {"name": "x", "approved": False, "by": None}


async def test_workflow_input_must_fit_the_first_step(engine: Engine) -> None:
    wf = Workflow("w", input=Other, output=Done).then(named_to_done)
    err = register(engine, wf)
    assert "input of step 'named_to_done'" in str(err)
    assert "'name'" in str(err)


async def test_last_output_must_fit_the_workflow_output(engine: Engine) -> None:
    wf = Workflow("w", input=Req, output=Counted).then(to_named)
    err = register(engine, wf)
    assert "the workflow's output" in str(err)
    assert "'count'" in str(err)


async def test_duplicate_step_names_are_rejected(engine: Engine) -> None:
    @step
    async def same(n: Named) -> Named:
        return n

    wf = Workflow("w", input=Named, output=Named).then(same).then(same)
    err = register(engine, wf)
    assert "duplicate name 'same'" in str(err)


async def test_duplicate_name_inside_a_parallel_is_rejected(engine: Engine) -> None:
    @step
    async def same(n: Named) -> Named:
        return n

    wf = Workflow("w", input=Named, output=Any).then(same).parallel(same, to_counted)
    err = register(engine, wf)
    assert "duplicate name 'same'" in str(err)


async def test_the_same_function_twice_under_two_names_is_fine(
    engine_factory: EngineFactory,
) -> None:
    async def body(n: Named) -> Named:
        return Named(name=n.name + "!")

    first, second = step(name="first")(body), step(name="second")(body)
    wf = Workflow("w", input=Named, output=Named).then(first).then(second)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", {"name": "a"}))
    assert run.output == {"name": "a!!"}


async def test_registering_a_different_workflow_under_a_used_version_is_rejected(
    engine: Engine,
) -> None:
    engine.register(Workflow("w", version=3, input=Req, output=Named).then(to_named))
    again = Workflow("w", version=3, input=Req, output=Named).then(to_named)
    err = register(engine, again)
    assert "version '3' is already registered" in str(err)
    assert "bump the version" in str(err)


def test_constructor_checks_workflows_too(tmp_path: Path) -> None:
    wf = Workflow("w", input=Req, output=Done).then(to_named).then(needs_counted)
    with pytest.raises(DefinitionError):
        Engine(open_store(str(tmp_path / "unused.db")), workflows=[wf])


def test_a_step_must_be_async() -> None:
    def sync(r: Req) -> Done:
        return Done(name=r.name)

    with pytest.raises(DefinitionError, match="must be an `async def` function"):
        step(sync)


def test_a_step_input_must_be_annotated() -> None:
    async def untyped(r) -> Done:  # type: ignore[no-untyped-def]
        return Done(name="x")

    with pytest.raises(DefinitionError, match="annotate the input parameter 'r'"):
        step(untyped)


def test_a_step_output_must_be_annotated() -> None:
    async def no_return(r: Req):  # type: ignore[no-untyped-def]
        return Done(name="x")

    with pytest.raises(DefinitionError, match="annotate the return type"):
        step(no_return)


def test_a_step_second_parameter_must_be_a_step_context() -> None:
    async def wrong(r: Req, ctx: int) -> Done:
        return Done(name="x")

    with pytest.raises(DefinitionError, match="must be annotated StepContext"):
        step(wrong)


def test_resume_to_output_needs_an_answer_that_fits_the_output() -> None:
    async def ask(r: Req, ctx: StepContext[Shown, Note]) -> Done:
        return Done(name="x")

    with pytest.raises(DefinitionError) as info:
        step(resume_to="output")(ask)
    assert "resume_to='output' but" in str(info.value)
    assert "'name'" in str(info.value)


def test_resume_to_output_with_a_fitting_answer_is_accepted() -> None:
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Approval:
        return await ctx.suspend(Shown(question="?"))

    sd = step(resume_to="output")(ask)
    assert sd.resume_to == "output"
    assert sd.resume_model is Approval


def test_resume_to_output_needs_a_resume_model() -> None:
    async def ask(r: Req) -> Done:
        return Done(name="x")

    with pytest.raises(DefinitionError, match="resume_to='output' needs a resume model"):
        step(resume_to="output")(ask)


def test_a_suspend_model_needs_a_resume_model() -> None:
    async def ask(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        return Done(name="x")

    with pytest.raises(DefinitionError, match="declare both a suspend model and a resume model"):
        step(suspend=Shown)(ask)
    with pytest.raises(DefinitionError, match="declare both"):
        step(resume=Approval)(ask)


def test_options_and_annotations_must_agree_on_models() -> None:
    async def ask(r: Req, ctx: StepContext[Shown, Approval]) -> Done:
        return Done(name="x")

    with pytest.raises(
        DefinitionError, match="resume= says Note but the StepContext says Approval"
    ):
        step(resume=Note)(ask)


def test_models_must_be_pydantic_models() -> None:
    async def ask(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        return Done(name="x")

    with pytest.raises(DefinitionError, match="must be a pydantic BaseModel subclass"):
        step(suspend=dict, resume=Approval)(ask)  # type: ignore[arg-type]


def test_models_from_step_options_are_used() -> None:
    async def ask(r: Req, ctx: StepContext) -> Done:  # type: ignore[type-arg]
        return Done(name="x")

    sd = step(suspend=Shown, resume=Approval, title="Please approve")(ask)
    assert (sd.suspend_model, sd.resume_model) == (Shown, Approval)
    assert sd.title == "Please approve"
    assert step(to_named.fn).title == "To named"


async def test_a_branch_target_is_type_checked_too(engine: Engine) -> None:
    wf = Workflow("w", input=Req, output=Any).then(to_named).branch((lambda n: True, needs_counted))
    err = register(engine, wf)
    assert "input of step 'needs_counted'" in str(err)


async def test_a_branch_without_otherwise_must_let_the_value_pass_through(engine: Engine) -> None:
    # With no case matching, the Named value reaches the workflow output unchanged.
    wf = Workflow("w", input=Req, output=Verdict).then(to_named)
    wf.branch((lambda n: True, named_to_done))
    err = register(engine, wf)
    assert "the workflow's output" in str(err)
    assert "Verdict needs field 'approved', which Named does not have" in str(err)


async def test_a_branch_with_otherwise_needs_no_pass_through(engine_factory: EngineFactory) -> None:
    @step
    async def reject(n: Named) -> Done:
        return Done(name=n.name, approved=False)

    @step
    async def accept(n: Named) -> Done:
        return Done(name=n.name, approved=True)

    wf = Workflow("w", input=Req, output=Verdict).then(to_named)
    wf.branch((lambda n: n.name == "ok", accept), otherwise=reject)
    engine = await engine_factory(wf)
    run = await settle(engine, await engine.start("w", {"name": "ok"}))
    assert run.output == {"name": "ok", "approved": True}


async def test_foreach_needs_a_list_input(engine: Engine) -> None:
    wf = Workflow("w", input=Req, output=Any).then(to_named).foreach(named_to_done)
    err = register(engine, wf)
    assert "needs a list input, got Named" in str(err)


async def test_foreach_concurrency_must_be_positive(engine: Engine) -> None:
    wf = Workflow("w", input=list[Named], output=Any).foreach(named_to_done, concurrency=0)
    err = register(engine, wf)
    assert "concurrency must be >= 1" in str(err)


async def test_an_empty_workflow_is_rejected(engine: Engine) -> None:
    err = register(engine, Workflow("empty", input=Req, output=Req))
    assert "has no steps" in str(err)
