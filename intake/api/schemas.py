"""marshmallow schemas at the HTTP boundary (load and dump kept apart).

They check shape only; the answers themselves are checked against the
Questionnaire by the clinical module, which names the item at fault.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

RECORD_NUMBER = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,31}$",
                                error="1 to 32 letters, digits or hyphens")


class WalkInSchema(Schema):
    """A patient without a record number: what the front desk collects."""

    class Meta:
        unknown = RAISE

    family_name = fields.Str(required=True, validate=validate.Length(1, 50))
    given_name = fields.Str(required=True, validate=validate.Length(1, 50))
    family_name_kana = fields.Str(validate=validate.Length(1, 50))
    given_name_kana = fields.Str(validate=validate.Length(1, 50))
    birth_date = fields.Date(required=True)
    sex = fields.Str(required=True, validate=validate.OneOf(["male", "female", "other",
                                                             "unknown"]))


class SubmitIntakeSchema(Schema):
    class Meta:
        unknown = RAISE

    answers = fields.Dict(keys=fields.Str(validate=validate.Length(1, 64)), values=fields.Raw(),
                          required=True)
    record_number = fields.Str(validate=RECORD_NUMBER)
    walk_in = fields.Nested(WalkInSchema)

    @validates_schema
    def _one_patient(self, data: dict[str, Any], **_: Any) -> None:
        if "record_number" in data and "walk_in" in data:
            raise ValidationError("give either record_number or walk_in, not both",
                                  field_name="walk_in")


class IdempotencyKeySchema(Schema):
    key = fields.Str(required=True, validate=[
        validate.Length(1, 200),
        validate.Regexp(r"^[\x21-\x7e]+$", error="printable ASCII without spaces"),
    ])
