"""Read a pydantic resume model into the facts the renderer and parser share.

A resume model is what the approver must supply. Each field becomes a ``FieldSpec`` of one
``FieldKind``; the model as a whole gets a ``Shape`` that decides which controls the request
message carries:

* ``APPROVAL``: a ``bool`` decision field (named ``approved``, or the only ``bool``), shown as
  Approve / Reject buttons. If any other field is required, the click opens a modal; fields
  listed in the model's ``x-required-on-reject`` JSON Schema keyword (a reason) are asked,
  as required, only by Reject's modal.
* ``CHOICE``: one ``Literal``/``Enum`` field and nothing else required: a button per option
  (up to ``INLINE_CHOICES_MAX``) or a select menu.
* ``ACKNOWLEDGE``: no fields at all: a single button.
* ``FORM``: anything else: a Respond button that opens a modal.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.errors import UnsupportedResumeModel
from bot.slack.blocks.annotations import (
    Choice,
    FieldKind,
    choice_key,
    classify,
    constraints,
    unwrap,
)
from bot.slack.blocks.text import humanize

__all__ = [
    "DECISION_FIELD",
    "INLINE_CHOICES_MAX",
    "REQUIRED_ON_REJECT",
    "Choice",
    "FieldKind",
    "FieldSpec",
    "ResumeSchema",
    "Shape",
    "check_renderable",
    "describe_field",
    "describe_model",
]

DECISION_FIELD = "approved"
REQUIRED_ON_REJECT = "x-required-on-reject"  # JSON Schema keyword: asked only when rejecting
# Up to this many options are shown inline (buttons, radio buttons, checkboxes); more get a menu.
INLINE_CHOICES_MAX = 5
TEXT_INPUT_MAX = 3000  # plain_text_input min_length / max_length ceiling
ID_MAX = 255  # block_id / action_id
MODAL_INPUTS_MAX = 99  # 100 blocks per modal, one kept for the intro line


class Shape(enum.StrEnum):
    """Which controls a request message offers for a resume model."""

    APPROVAL = "approval"
    CHOICE = "choice"
    ACKNOWLEDGE = "acknowledge"
    FORM = "form"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Everything the renderer and parser need to know about one resume-model field."""

    name: str
    input_key: str  # the key pydantic validates under (the alias when there is one)
    kind: FieldKind
    label: str
    hint: str | None
    placeholder: str | None
    required: bool  # pydantic has no default for it
    nullable: bool  # None is an accepted value
    default: Any  # PydanticUndefined when there is none (or only a default_factory)
    choices: tuple[Choice, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | float | Decimal | None = None
    maximum: int | float | Decimal | None = None
    multiline: bool = False
    number_type: type = int

    @property
    def optional(self) -> bool:
        """Whether Slack may leave the input empty (the model then uses its default or None)."""
        return not self.required or self.nullable

    @property
    def has_default(self) -> bool:
        """Whether a concrete default exists that can pre-fill the input."""
        return self.default is not PydanticUndefined and self.default is not None

    def choice_for_key(self, key: str) -> Choice | None:
        """Find the option whose Slack value is ``key``."""
        return next((choice for choice in self.choices if choice.key == key), None)

    def choice_for_value(self, value: Any) -> Choice | None:
        """Find the option for a Python value (a literal, an Enum member or its value)."""
        for choice in self.choices:
            if choice.value == value or choice.key == choice_key(value):
                return choice
        return None


@dataclass(frozen=True, slots=True)
class ResumeSchema:
    """A resume model read once: its fields in order and the shape of its controls."""

    model: type[BaseModel]
    fields: tuple[FieldSpec, ...]
    shape: Shape
    decision_field: str | None = None  # APPROVAL only
    choice_field: str | None = None  # CHOICE only
    needs_modal: bool = False  # APPROVAL only: a click cannot answer on its own
    required_on_reject: tuple[str, ...] = ()  # APPROVAL only: Reject opens a modal for these

    def field(self, name: str) -> FieldSpec:
        """The spec of the field called ``name``."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def form_fields(self, *, decision: bool | None = None) -> tuple[FieldSpec, ...]:
        """Fields a modal asks for; a decision already made by the clicked button is left out."""
        if decision is None or self.decision_field is None:
            return self.fields
        return tuple(
            replace(spec, required=True, nullable=False)
            if decision is False and spec.name in self.required_on_reject
            else spec
            for spec in self.fields
            if spec.name != self.decision_field
        )


def check_renderable(model: type[BaseModel]) -> None:
    """Refuse a resume model that Slack cannot ask for.

    Raises:
        UnsupportedResumeModel: naming the field and type, for nested models, unsupported or
            ambiguous types, too many options or fields, and constraints no input can satisfy.
    """
    describe_model(model)


@functools.cache
def describe_model(model: type[BaseModel]) -> ResumeSchema:
    """Read ``model`` into a ``ResumeSchema`` (cached per class).

    Raises:
        UnsupportedResumeModel: see ``check_renderable``.
    """
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UnsupportedResumeModel(model=repr(model), reason="not a pydantic BaseModel class")
    specs = tuple(
        describe_field(name, info, model=model.__name__)
        for name, info in model.model_fields.items()
    )
    if len(specs) > MODAL_INPUTS_MAX:
        raise UnsupportedResumeModel(
            model=model.__name__,
            reason=f"{len(specs)} fields; a Slack modal holds at most {MODAL_INPUTS_MAX} inputs",
        )
    return _with_shape(model, specs)


def describe_field(name: str, info: FieldInfo, *, model: str = "model") -> FieldSpec:
    """Read one field into a ``FieldSpec``.

    Raises:
        UnsupportedResumeModel: when the field's type has no Slack input.
    """
    if len(name) > ID_MAX:
        raise UnsupportedResumeModel(model=model, field=name[:40], reason="name over 255 chars")
    core, nullable, metadata = unwrap(info.annotation, list(info.metadata), model, name)
    kind, choices, number_type = classify(core, metadata, model=model, name=name)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    found = constraints(metadata)
    min_length, max_length = found.get("min_length"), found.get("max_length")
    if kind is FieldKind.TEXT and min_length is not None and min_length > TEXT_INPUT_MAX:
        raise UnsupportedResumeModel(
            model=model,
            field=name,
            annotation=info.annotation,
            reason=f"min_length {min_length} exceeds Slack's {TEXT_INPUT_MAX}-character input",
        )
    default = info.default
    placeholder = extra.get("placeholder")
    return FieldSpec(
        name=name,
        input_key=_input_key(name, info),
        kind=kind,
        label=info.title or humanize(name),
        hint=info.description,
        placeholder=placeholder if isinstance(placeholder, str) else None,
        required=info.is_required(),
        nullable=nullable,
        default=default,
        choices=choices,
        min_length=min_length,
        max_length=max_length,
        minimum=_bound(found, "ge", "gt", kind, +1),
        maximum=_bound(found, "le", "lt", kind, -1),
        multiline=bool(extra.get("multiline")) or (max_length or 0) > 150,
        number_type=number_type,
    )


def _input_key(name: str, info: FieldInfo) -> str:
    # pydantic validates under the alias; AliasPath/AliasChoices fall back to the name, which
    # only works with populate_by_name, and that is the model author's call.
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return info.alias or name


def _bound(
    limits: dict[str, Any], inclusive: str, exclusive: str, kind: FieldKind, step: int
) -> Any:
    """An inclusive bound for Slack's number_input, which has no exclusive min/max.

    For whole numbers ``gt=0`` becomes ``min 1``; for decimals the exclusive bound is passed as
    is and pydantic still rejects the bound itself on submit.
    """
    if inclusive in limits:
        return limits[inclusive]
    if exclusive not in limits:
        return None
    value = limits[exclusive]
    if kind is FieldKind.INTEGER:
        return math.floor(value) + 1 if step > 0 else math.ceil(value) - 1
    return value


def _required_on_reject(model: type[BaseModel], specs: tuple[FieldSpec, ...]) -> tuple[str, ...]:
    extra = model.model_config.get("json_schema_extra")
    names = extra.get(REQUIRED_ON_REJECT) if isinstance(extra, dict) else None
    known = {spec.name for spec in specs}
    if not isinstance(names, list):
        return ()
    return tuple(n for n in names if isinstance(n, str) and n in known)


def _with_shape(model: type[BaseModel], specs: tuple[FieldSpec, ...]) -> ResumeSchema:
    if not specs:
        return ResumeSchema(model=model, fields=specs, shape=Shape.ACKNOWLEDGE)
    booleans = [spec for spec in specs if spec.kind is FieldKind.BOOLEAN]
    decision = next((spec for spec in booleans if spec.name == DECISION_FIELD), None)
    if decision is None and len(booleans) == 1:
        decision = booleans[0]
    if decision is not None:
        others_required = any(not s.optional for s in specs if s is not decision)
        return ResumeSchema(
            model=model,
            fields=specs,
            shape=Shape.APPROVAL,
            decision_field=decision.name,
            needs_modal=others_required,
            required_on_reject=_required_on_reject(model, specs),
        )
    choices = [spec for spec in specs if spec.kind is FieldKind.CHOICE]
    if len(choices) == 1:
        rest_required = any(not s.optional for s in specs if s is not choices[0])
        if not rest_required:
            return ResumeSchema(
                model=model, fields=specs, shape=Shape.CHOICE, choice_field=choices[0].name
            )
    return ResumeSchema(model=model, fields=specs, shape=Shape.FORM)
