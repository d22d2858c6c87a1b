"""Per-interrupt resume models from JSON Schema: the subset, its refusals, and the engine path."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl

from engine import (
    InterruptStatus,
    OnExpiry,
    ResumeValidationError,
    RunStatus,
    StepContext,
    UnsupportedSchema,
    Workflow,
    model_from_json_schema,
    step,
)
from tests.engine.conftest import EngineFactory
from tests.engine.wf_common import pending, settle


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Form(BaseModel):
    approved: bool
    comment: str | None = Field(default=None, max_length=200)
    color: Color = Color.RED
    tags: list[Literal["a", "b"]] = []
    when: dt.date
    at: dt.datetime | None = None
    hour: dt.time | None = None
    count: int = Field(ge=1, le=5, title="How many")
    ratio: float = Field(default=0.5, gt=0, lt=1)
    email: EmailStr
    link: HttpUrl
    code: str = Field(pattern=r"^[A-Z]{3}$", description="three letters")


def test_a_pydantic_models_own_schema_round_trips_to_an_equivalent_model() -> None:
    model = model_from_json_schema(Form.model_json_schema())

    assert list(model.model_fields) == list(Form.model_fields)  # the form keeps its order
    assert model.model_fields["count"].title == "How many"
    assert model.model_fields["code"].description == "three letters"
    good = {"approved": True, "when": "2026-01-02", "count": 3, "email": "a@b.co",
            "link": "https://example.com/x", "code": "ABC", "tags": ["a"]}  # fmt: skip
    answer = model.model_validate(good).model_dump(mode="json")
    assert answer["color"] == "red" and answer["when"] == "2026-01-02" and answer["tags"] == ["a"]
    with pytest.raises(ValueError) as caught:
        model.model_validate({**good, "count": 9, "code": "abc", "color": "green", "x": 1})
    assert {e["loc"][0] for e in caught.value.errors()} == {"count", "code", "color", "x"}  # type: ignore[attr-defined]


def test_the_same_schema_gives_the_same_cached_class() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    assert model_from_json_schema(schema) is model_from_json_schema(dict(schema))


@pytest.mark.parametrize(
    ("schema", "prop", "words"),
    [
        ({"type": "array"}, None, "top level"),
        ({"type": "object", "properties": {"x": {"type": "object"}}}, "x", "type 'object'"),
        ({"type": "object", "properties": {"x": {"type": "string", "format": "ipv4"}}}, "x",
         "format 'ipv4'"),
        ({"type": "object", "properties": {"x": {"type": "array", "items": {"type": "integer"}}}},
         "x", "string enums"),
        ({"type": "object", "properties": {"x": {"anyOf": [{"type": "string"},
          {"type": "integer"}]}}}, "x", "anyOf"),
        ({"type": "object", "properties": {"x": {"type": "string", "minLength": -1}}}, "x",
         "minLength"),
        ({"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}}, "x",
         "pattern"),
        ({"type": "object", "properties": {"x": {"type": "integer", "default": "no"}}}, "x",
         "default"),
        ({"type": "object", "properties": {"bad-name": {"type": "string"}}}, "bad-name", "names"),
        ({"type": "object", "properties": {"model_dump": {"type": "string"}}}, "model_dump",
         "reserved"),
        ({"type": "object", "properties": {}, "required": ["y"]}, "y", "required"),
        ({"type": "object", "properties": {"x": {"type": "string", "foo": 1}}}, "x", "foo"),
        ({"type": "object", "oneOf": []}, None, "oneOf"),
    ],
)  # fmt: skip
def test_a_schema_outside_the_subset_names_the_property_and_lists_what_is_supported(
    schema: dict[str, Any], prop: str | None, words: str
) -> None:
    with pytest.raises(UnsupportedSchema) as caught:
        model_from_json_schema(schema)
    assert caught.value.property == prop
    assert words in str(caught.value)
    assert "supported: an object schema" in str(caught.value)


class Plain(BaseModel):
    """The step's static resume model: anything goes (each interrupt brings its own)."""

    model_config = ConfigDict(extra="allow")


class Ask(BaseModel):
    quorum: int = 1
    expires: float | None = None


class Out(BaseModel):
    answer: dict[str, Any]
    kind: str


SCHEMA = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "size": {"type": "string", "enum": ["s", "m", "l"]},
    },
    "required": ["approved", "size"],
}


def schema_wf() -> Workflow:
    @step
    async def ask(a: Ask, ctx: StepContext[Plain, Plain]) -> Out:
        answer = await ctx.suspend(
            Plain(),
            resume_schema=SCHEMA,
            quorum=a.quorum,
            expires=a.expires,
            on_expiry=OnExpiry.resume_with({"approved": False, "size": "s"}) if a.expires else None,
        )
        return Out(answer=answer.model_dump(mode="json"), kind=type(answer).__name__)

    return Workflow("schema_wf", input=Ask, output=Out).then(ask)


async def test_an_interrupt_with_a_resume_schema_validates_answers_against_it(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(schema_wf())
    run_id = await engine.start("schema_wf", {"quorum": 2})
    await settle(engine, run_id)
    (interrupt,) = await pending(engine, run_id)
    assert interrupt.resume_schema == SCHEMA  # stored with the interrupt, read back
    assert set(engine.resume_model(interrupt).model_fields) == {"approved", "size"}

    with pytest.raises(ResumeValidationError) as caught:
        await engine.resume(run_id, interrupt.id, {"approved": True, "size": "xl"}, actor="a")
    assert set(caught.value.errors) == {"size"}
    assert (await engine.get_interrupt(run_id, interrupt.id)).responses == []

    first = await engine.resume(run_id, interrupt.id, {"approved": True, "size": "m"}, actor="a")
    assert first.status is InterruptStatus.PENDING  # quorum 2 works on the dynamic model
    await engine.resume(run_id, interrupt.id, {"approved": True, "size": "l"}, actor="b")
    run = await engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=10)
    assert run.output["answer"] == {"approved": True, "size": "l"}
    assert run.output["kind"] != "Plain"  # the step got an instance of the schema's model


async def test_an_expiry_default_is_checked_against_the_schema_and_applied(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(schema_wf())
    run_id = await engine.start("schema_wf", {"expires": 0.05})
    run = await engine.wait(run_id, until=[RunStatus.COMPLETED], timeout=10)
    assert run.output["answer"] == {"approved": False, "size": "s"}
    (interrupt,) = (await engine.get_run(run_id)).interrupts
    assert interrupt.status is InterruptStatus.EXPIRED


async def test_interrupts_without_a_resume_schema_store_none(
    engine_factory: EngineFactory,
) -> None:
    @step
    async def plain(a: Ask, ctx: StepContext[Plain, Plain]) -> Ask:
        await ctx.suspend(Plain())
        return a

    engine = await engine_factory(Workflow("plain", input=Ask, output=Ask).then(plain))
    run_id = await engine.start("plain", {})
    await settle(engine, run_id)
    (interrupt,) = await pending(engine, run_id)
    assert interrupt.resume_schema is None
    assert engine.resume_model(interrupt) is Plain
