"""The approval preset's schemas, and the reason-on-reject keyword."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.client.models import ApprovalPreset
from bot.requests.schema import approval_schema
from bot.slack.blocks.forms import describe_model
from engine import UnsupportedSchema, model_from_json_schema


def test_a_reason_is_required_to_reject_and_not_to_approve() -> None:
    model = model_from_json_schema(approval_schema(ApprovalPreset(comment="required_on_reject")))
    assert model.model_validate({"approved": True}).model_dump() == {
        "approved": True,
        "comment": None,
    }
    with pytest.raises(ValidationError, match="comment is required to reject"):
        model.model_validate({"approved": False})
    assert model.model_validate({"approved": False, "comment": "no"}).model_dump()["comment"]
    shape = describe_model(model)
    assert shape.required_on_reject == ("comment",) and not shape.needs_modal
    (reason,) = shape.form_fields(decision=False)
    assert reason.name == "comment" and not reason.optional


def test_reason_on_reject_needs_a_boolean_approved_and_known_properties() -> None:
    props = {"note": {"type": "string"}}
    with pytest.raises(UnsupportedSchema, match="boolean"):
        model_from_json_schema({"type": "object", "properties": props,
                                "x-required-on-reject": ["note"]})  # fmt: skip
    with pytest.raises(UnsupportedSchema, match="property names"):
        model_from_json_schema({"type": "object", "properties": props,
                                "x-required-on-reject": ["nope"]})  # fmt: skip
