"""marshmallow schemas for the CDS Hooks request and feedback bodies (shape only).

Unknown keys are ignored rather than refused: CDS Hooks reserves ``extension`` and
clients of later versions send fields this service does not use. Everything this
service reads is checked for type; business checks (is the card ours, did the
response name this patient) live in :mod:`intake.cds.services`.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate


class HookRequestSchema(Schema):
    """POST /cds-services/<id>: the fields this service reads."""

    class Meta:
        unknown = EXCLUDE

    hook = fields.Str(required=True, validate=validate.Length(1, 100))
    hookInstance = fields.Str(required=True, validate=validate.Length(1, 100))
    fhirServer = fields.Str(validate=validate.Length(1, 2000))
    context = fields.Dict(keys=fields.Str(), required=True)
    # A key present with null means "no data" (the client found nothing to prefetch).
    prefetch = fields.Dict(keys=fields.Str(), values=fields.Raw(allow_none=True))


class CodingSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    system = fields.Str(validate=validate.Length(1, 300))
    code = fields.Str(required=True, validate=validate.Length(1, 100))
    display = fields.Str(validate=validate.Length(max=500))


class OverrideReasonSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.Nested(CodingSchema)
    userComment = fields.Str(validate=validate.Length(1, 2000))


class AcceptedSuggestionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.Str(required=True, validate=validate.Length(1, 100))


class FeedbackItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    card = fields.UUID(required=True)
    outcome = fields.Str(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(
        fields.Nested(AcceptedSuggestionSchema), validate=validate.Length(max=20))
    overrideReason = fields.Nested(OverrideReasonSchema)
    # "ISO timestamp in UTC": an offset is required so the time is unambiguous.
    outcomeTimestamp = fields.AwareDateTime(required=True)


class FeedbackSchema(Schema):
    """POST /cds-services/<id>/feedback."""

    class Meta:
        unknown = EXCLUDE

    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True,
                           validate=validate.Length(1, 100))
