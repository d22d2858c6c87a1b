"""Resume models from JSON Schema: ``model_from_json_schema`` for a documented subset.

A step normally declares its resume model as a pydantic class. A caller outside the
process (the request API) describes the answer it wants as JSON Schema instead; this
module turns such a schema into a pydantic model, or refuses it with ``UnsupportedSchema``
naming the property at fault and listing what is supported.

The subset (enough for forms a person fills in, and what ``Model.model_json_schema()``
produces for such models)::

    {"type": "object", "title": ..., "description": ..., "required": [...],
     "additionalProperties": false, "properties": {NAME: PROPERTY, ...}}

    PROPERTY: {"type": "string", "enum": [...]}  (choices)
            | {"type": "string", "format": "date" | "date-time" | "time" | "email" | "uri",
               "minLength": n, "maxLength": n, "pattern": "..."}
            | {"type": "integer" | "number", "minimum", "maximum",
               "exclusiveMinimum", "exclusiveMaximum"}
            | {"type": "boolean"}
            | {"type": "array", "items": {"type": "string", "enum": [...]},
               "minItems": n, "maxItems": n, "uniqueItems": bool}
    each with "title", "description", "default"; nullable as ``"anyOf": [X, {"type":
    "null"}]`` or ``"type": [T, "null"]``; enums may sit in ``$defs`` behind ``$ref``.

One extension: ``"x-required-on-reject": [NAME, ...]`` (with a boolean ``approved``
property) makes those properties required when ``approved`` is false, as a reason for a
rejection; the model keeps the keyword in its own JSON Schema so adapters can see it.

Property names are identifiers (``[A-Za-z][A-Za-z0-9_]*``) that are not pydantic's own
attribute names, so answers keep exactly the keys the schema names.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import keyword
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from engine.errors import SignoffError

__all__ = ["SUPPORTED", "UnsupportedSchema", "model_from_json_schema", "schema_key"]

SUPPORTED = (
    "an object schema whose properties are: string (enum; format date, date-time, time, "
    "email, uri; minLength, maxLength, pattern), integer or number (minimum, maximum, "
    "exclusiveMinimum, exclusiveMaximum), boolean, or array of string enums (minItems, "
    "maxItems); each with title, description and default; nullable via anyOf with null; "
    "plus required"
)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_ANNOTATIONS = {"title", "description", "default", "examples", "$comment"}
_TOP_KEYS = {"type", "properties", "required", "title", "description", "additionalProperties"}
_TOP_KEYS |= {"$schema", "$defs", "definitions", "$id", "$comment", "x-required-on-reject"}
REQUIRED_ON_REJECT = "x-required-on-reject"
_KEYS: dict[str, set[str]] = {
    "string": {"enum", "format", "minLength", "maxLength", "pattern", "const"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": set(),
    "array": {"items", "minItems", "maxItems", "uniqueItems"},
}
_FORMATS: dict[str, Any] = {
    "date": dt.date,
    "date-time": dt.datetime,
    "time": dt.time,
    "email": EmailStr,
    "uri": AnyUrl,
}
_RESERVED = set(dir(BaseModel))


class UnsupportedSchema(SignoffError):
    """A JSON Schema outside the subset ``model_from_json_schema`` supports.

    Attributes:
        property: the property at fault (None: the schema as a whole).
        reason: what is wrong with it.
    """

    def __init__(self, property: str | None, reason: str) -> None:
        self.property = property
        self.reason = reason
        where = f"property {property!r}" if property else "the schema"
        super().__init__(f"{where}: {reason}; supported: {SUPPORTED}")


def schema_key(schema: Mapping[str, Any]) -> str:
    """A stable hash of a schema (canonical JSON), for caching the models built from it."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps's own, built once: hot path


def model_from_json_schema(schema: Mapping[str, Any], *, name: str = "Answer") -> type[BaseModel]:
    """Build a pydantic model from a JSON Schema in the documented subset.

    Models are cached by the schema's hash, so the same schema gives the same class.

    Raises:
        UnsupportedSchema: naming the property and listing what is supported.
    """
    if not isinstance(schema, Mapping):
        raise UnsupportedSchema(None, "must be a JSON object")
    try:
        # Not sorted: the order of the properties is the order of the form.
        text = _COMPACT.encode(schema)
    except (TypeError, ValueError) as exc:
        raise UnsupportedSchema(None, f"not JSON: {exc}") from None
    return _build(text, name)


@functools.lru_cache(maxsize=1024)
def _build(text: str, name: str) -> type[BaseModel]:
    schema = json.loads(text)
    unknown = set(schema) - _TOP_KEYS
    if unknown:
        raise UnsupportedSchema(None, f"unsupported keywords {sorted(unknown)}")
    if schema.get("type", "object") != "object":
        raise UnsupportedSchema(None, 'the top level must be {"type": "object"}')
    if schema.get("additionalProperties", False) not in (False, True):
        raise UnsupportedSchema(None, "additionalProperties must be true or false")
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict):
        raise UnsupportedSchema(None, "properties must be an object")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise UnsupportedSchema(None, "required must be a list of property names")
    missing = [r for r in required if r not in props]
    if missing:
        raise UnsupportedSchema(missing[0], "is required but not among the properties")
    defs = schema.get("$defs") or schema.get("definitions") or {}
    fields: dict[str, Any] = {}
    for prop, spec in props.items():
        if not isinstance(prop, str) or not _NAME.match(prop) or keyword.iskeyword(prop):
            raise UnsupportedSchema(str(prop), "names must match [A-Za-z][A-Za-z0-9_]*")
        if prop in _RESERVED or prop.startswith("model_"):
            raise UnsupportedSchema(prop, "the name is reserved by pydantic")
        fields[prop] = _field(prop, spec, prop in required, defs)
    model_name = re.sub(r"\W", "_", str(schema.get("title") or name)) or name
    on_reject = _required_on_reject(schema, props)
    config = ConfigDict(extra="forbid")
    validators: dict[str, Any] = {}
    if on_reject:
        config["json_schema_extra"] = {REQUIRED_ON_REJECT: list(on_reject)}
        validators["_reason_on_reject"] = _reason_validator(on_reject)
    try:
        model = create_model(
            model_name if model_name[0].isalpha() else name,
            __config__=config,
            __doc__=schema.get("description"),
            __validators__=validators,
            **fields,
        )
    except Exception as exc:  # a pattern pydantic cannot compile, an impossible bound...
        raise UnsupportedSchema(None, f"cannot build a model: {exc}") from None
    return model


def _required_on_reject(schema: Mapping[str, Any], props: Mapping[str, Any]) -> tuple[str, ...]:
    names = schema.get(REQUIRED_ON_REJECT, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n in props for n in names):
        raise UnsupportedSchema(None, f"{REQUIRED_ON_REJECT} must list property names")
    if names and (props.get("approved") or {}).get("type") != "boolean":
        raise UnsupportedSchema(None, f'{REQUIRED_ON_REJECT} needs a boolean "approved"')
    return tuple(names)


def _reason_validator(names: tuple[str, ...]) -> Any:
    def check(self: BaseModel) -> BaseModel:
        if getattr(self, "approved", None) is False:
            empty = [n for n in names if getattr(self, n, None) in (None, "", [])]
            if empty:
                raise ValueError(f"{', '.join(empty)} is required to reject")
        return self

    return model_validator(mode="after")(check)


def _field(prop: str, spec: Any, required: bool, defs: Mapping[str, Any]) -> tuple[Any, Any]:
    spec = _resolve(prop, spec, defs)
    spec, nullable = _nullable(prop, spec, defs)
    kind = spec.get("type")
    if kind is None and "enum" in spec:
        kind = "string"
    if kind not in _KEYS:
        raise UnsupportedSchema(prop, f"type {kind!r} is not supported")
    unknown = set(spec) - _KEYS[kind] - _ANNOTATIONS - {"type"}
    if unknown:
        raise UnsupportedSchema(prop, f"unsupported keywords {sorted(unknown)} for {kind}")
    annotation, constraints = _annotation(prop, kind, spec, defs)
    if nullable:
        annotation = annotation | None
    info: dict[str, Any] = dict(constraints)
    for key in ("title", "description"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise UnsupportedSchema(prop, f"{key} must be a string")
            info[key] = spec[key]
    if "default" in spec:
        default = spec["default"]
        try:
            TypeAdapter(annotation).validate_python(default)
        except ValidationError:
            raise UnsupportedSchema(prop, "the default does not fit the type") from None
        info["default"] = default
    elif not required:
        annotation = annotation | None
        info["default"] = None
    return annotation, Field(**info)


def _resolve(prop: str, spec: Any, defs: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UnsupportedSchema(prop, "each property must be a JSON object")
    ref = spec.get("$ref")
    if ref is None:
        return spec
    target = None
    for prefix in ("#/$defs/", "#/definitions/"):
        if isinstance(ref, str) and ref.startswith(prefix):
            target = defs.get(ref.removeprefix(prefix))
    if not isinstance(target, dict):
        raise UnsupportedSchema(prop, f"$ref {ref!r} does not name an entry of $defs")
    merged = {**target, **{k: v for k, v in spec.items() if k != "$ref"}}
    return merged


def _nullable(
    prop: str, spec: dict[str, Any], defs: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    options = spec.get("anyOf") or spec.get("oneOf")
    if options is not None:
        if not isinstance(options, list):
            raise UnsupportedSchema(prop, "anyOf must be a list")
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) != 1 or len(rest) == len(options):
            raise UnsupportedSchema(prop, "anyOf is only supported as [type, {type: null}]")
        inner = _resolve(prop, rest[0], defs)
        outer = {k: v for k, v in spec.items() if k not in ("anyOf", "oneOf")}
        return {**inner, **outer}, True
    kind = spec.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise UnsupportedSchema(prop, "a list of types is only supported as [type, 'null']")
        return {**spec, "type": rest[0]}, len(rest) < len(kind)
    return spec, False


def _annotation(
    prop: str, kind: str, spec: dict[str, Any], defs: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    if kind == "boolean":
        return bool, {}
    if kind in ("integer", "number"):
        return _numeric(prop, kind, spec)
    if kind == "array":
        return _array(prop, spec, defs)
    return _string(prop, spec)


def _numeric(prop: str, kind: str, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if "enum" in spec:
        return _literal(prop, spec["enum"], int), {}
    bounds = {
        "ge": spec.get("minimum"),
        "le": spec.get("maximum"),
        "gt": spec.get("exclusiveMinimum"),
        "lt": spec.get("exclusiveMaximum"),
    }
    for key, value in bounds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UnsupportedSchema(prop, f"bound {key} must be a number")
    found = {k: v for k, v in bounds.items() if v is not None}
    return (int if kind == "integer" else float), found


def _array(prop: str, spec: dict[str, Any], defs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    items = _resolve(prop, spec.get("items"), defs)
    if "enum" not in items or items.get("type", "string") != "string":
        raise UnsupportedSchema(prop, "arrays must hold string enums")
    if set(items) - {"type", "enum", "title", "description"}:
        raise UnsupportedSchema(prop, "array items support only type and enum")
    sizes = {"min_length": spec.get("minItems"), "max_length": spec.get("maxItems")}
    found = {k: _count(prop, k, v) for k, v in sizes.items() if v is not None}
    return list[_literal(prop, items["enum"], str)], found  # type: ignore[misc]


def _string(prop: str, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if "const" in spec:
        return _literal(prop, [spec["const"]], str), {}
    if "enum" in spec:
        return _literal(prop, spec["enum"], str), {}
    fmt = spec.get("format")
    if fmt is not None:
        if fmt not in _FORMATS:
            raise UnsupportedSchema(prop, f"format {fmt!r} is not one of {sorted(_FORMATS)}")
        if fmt != "uri" and set(spec) & {"minLength", "maxLength", "pattern"}:
            raise UnsupportedSchema(prop, f"format {fmt} takes no length or pattern")
        return _FORMATS[fmt], {}
    constraints: dict[str, Any] = {}
    for key, name in (("minLength", "min_length"), ("maxLength", "max_length")):
        if key in spec:
            constraints[name] = _count(prop, key, spec[key])
    if "pattern" in spec:
        pattern = spec["pattern"]
        if not isinstance(pattern, str):
            raise UnsupportedSchema(prop, "pattern must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UnsupportedSchema(prop, f"pattern is not a valid regex: {exc}") from None
        constraints["pattern"] = pattern
    return str, constraints


def _count(prop: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnsupportedSchema(prop, f"{key} must be a non-negative integer")
    return value


def _literal(prop: str, values: Any, kind: type) -> Any:
    if not isinstance(values, list) or not values:
        raise UnsupportedSchema(prop, "enum must be a non-empty list")
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise UnsupportedSchema(prop, f"enum values must all be {kind.__name__}s")
    if len(set(values)) != len(values):
        raise UnsupportedSchema(prop, "enum values must be distinct")
    return Literal[tuple(values)]
