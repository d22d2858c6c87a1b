"""A request's ``response`` as a JSON Schema, checked like a workflow's resume model.

The approval preset becomes a small schema (``approved`` plus a comment); a JSON Schema
is taken as given. Either way it must be in the engine's subset
(``engine.model_from_json_schema``) and renderable in Slack (``check_renderable``), the
same check workflows get at start-up; anything else is a 422 naming the property.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from bot.client.models import ApprovalPreset
from bot.errors import UnsupportedResumeModel
from bot.slack.blocks.forms import REQUIRED_ON_REJECT, check_renderable
from bot.web.problems import Problem
from engine import UnsupportedSchema, field_errors, model_from_json_schema

__all__ = ["COMMENT_MAX", "approval_schema", "response_model", "response_schema"]

COMMENT_MAX = 2000


def approval_schema(preset: ApprovalPreset) -> dict[str, Any]:
    """The JSON Schema of the approve/reject preset."""
    props: dict[str, Any] = {"approved": {"type": "boolean", "title": "Approved"}}
    required = ["approved"]
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if preset.comment == "none":
        return schema
    props["comment"] = {"type": "string", "title": "Comment", "maxLength": COMMENT_MAX}
    if preset.comment == "required":
        props["comment"]["minLength"] = 1
        required.append("comment")
    elif preset.comment == "required_on_reject":
        # Approve answers at once; Reject opens a modal asking for the reason.
        props["comment"]["title"] = "Reason"
        props["comment"]["minLength"] = 1
        schema[REQUIRED_ON_REJECT] = ["comment"]
    return schema


def response_schema(response: ApprovalPreset | dict[str, Any]) -> dict[str, Any]:
    """The schema a request's answer must fit."""
    if isinstance(response, ApprovalPreset):
        return approval_schema(response)
    return response


def response_model(schema: dict[str, Any], *, quorum: int) -> type[BaseModel]:
    """The answer's model, or a 422 naming the property and what is supported."""
    try:
        model = model_from_json_schema(schema, name="Answer")
        check_renderable(model)
    except UnsupportedSchema as exc:
        raise Problem(
            422,
            "unsupported_schema",
            str(exc),
            errors={f"response.{exc.property}" if exc.property else "response": exc.reason},
        ) from None
    except UnsupportedResumeModel as exc:
        raise Problem(
            422,
            "unsupported_schema",
            f"Slack cannot ask for this response: {exc}",
            errors={"response": str(exc)},
        ) from None
    if quorum > 1:
        field = model.model_fields.get("approved")
        if field is None or field.annotation is not bool:
            raise Problem(
                422,
                "quorum_needs_approval",
                'quorum > 1 needs a response with a required boolean "approved" property',
                errors={"quorum": "needs a boolean approved property in the response"},
            )
    return model


def check_default(model: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    """The expiry default validated against the answer's model (422 per field)."""
    try:
        return model.model_validate(answer).model_dump(mode="json")
    except ValidationError as exc:
        errors = {f"on_expiry.answer.{k}": v for k, v in field_errors(exc).items()}
        raise Problem(
            422,
            "invalid_expiry_answer",
            "on_expiry.answer does not fit the response",
            errors=errors,
        ) from None
