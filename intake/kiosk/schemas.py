"""marshmallow schemas for what the tablet posts: the staff start form and each screen.

Shape only, at the boundary; whether an answer fits its question is checked again by
``parse_simple_answers`` against the Questionnaire, the one definition of the answers.
The screen schemas are built from the Questionnaire too, one per screen, so there is no
second hand-written list of questions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema
from werkzeug.datastructures import MultiDict

from intake.api.schemas import RECORD_NUMBER, WalkInSchema
from intake.kiosk.form import Question, Section
from intake.web.i18n import LANGS

PATIENT_KINDS = ("record", "walk_in")
SEXES = ("male", "female", "other", "unknown")
WALK_IN_FIELDS = ("family_name", "given_name", "family_name_kana", "given_name_kana",
                  "birth_date", "sex")
# Hiragana, katakana (with the long-vowel mark and middle dot) and spaces.
KANA = validate.Regexp(r"^[\u3041-\u3096\u309D\u309E\u30A1-\u30FA\u30FC-\u30FE\u30FB"
                       r"\u3000 ]+$", error="kana only")
SECTION_ACTIONS = ("next", "back", "review", "autosave", "timeout")
_NAME = validate.Length(1, 50)


class _Form(Schema):
    """Form posts: blank fields are unanswered, and every post carries a CSRF token."""

    class Meta:
        unknown = RAISE

    csrf_token = fields.Str(load_only=True)

    @pre_load
    def _drop_blanks(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            out[key] = value
        return out


class StartFormSchema(_Form):
    """The staff start screen: PIN, who the patient is, and the patient's language."""

    pin = fields.Str(required=True, validate=validate.Length(1, 64))
    lang = fields.Str(required=True, validate=validate.OneOf(LANGS))
    patient = fields.Str(required=True, validate=validate.OneOf(PATIENT_KINDS))
    record_number = fields.Str(validate=RECORD_NUMBER)
    family_name = fields.Str(validate=_NAME)
    given_name = fields.Str(validate=_NAME)
    family_name_kana = fields.Str(validate=[_NAME, KANA])
    given_name_kana = fields.Str(validate=[_NAME, KANA])
    birth_date = fields.Date()
    sex = fields.Str(validate=validate.OneOf(SEXES))

    @pre_load
    def _only_chosen_kind(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # The other kind's fields may still hold what staff typed before switching;
        # they are not part of this patient.
        kind = data.get("patient")
        drop = WALK_IN_FIELDS if kind == "record" else ("record_number",) \
            if kind == "walk_in" else ()
        return {k: v for k, v in data.items() if k not in drop}

    @validates_schema
    def _patient_complete(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("patient") == "record" and "record_number" not in data:
            errors["record_number"] = ["required"]
        if data.get("patient") == "walk_in":
            for name in WALK_IN_FIELDS:
                if name not in data:
                    errors[name] = ["required"]
            born = data.get("birth_date")
            if isinstance(born, date) and not date(1900, 1, 1) <= born <= date.today():
                errors["birth_date"] = ["out of range"]
        if errors:
            raise ValidationError(errors)


_walk_in = WalkInSchema()


def demographics_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The walk-in patient in the JSON API's shape (validated by the API's own schema)."""
    if data["patient"] != "walk_in":
        return None
    loaded = _walk_in.load({k: (v.isoformat() if isinstance(v, date) else v)
                            for k, v in data.items() if k in WALK_IN_FIELDS})
    loaded["birth_date"] = loaded["birth_date"].isoformat()
    return dict(loaded)


class LanguageSchema(_Form):
    lang = fields.Str(required=True, validate=validate.OneOf(LANGS))


def _answer_field(question: Question) -> fields.Field[Any]:
    spec = question.spec
    if spec.kind == "bool":
        return fields.Boolean(truthy={"true"}, falsy={"false"})
    if spec.kind == "int":
        return fields.Integer(strict=False, validate=validate.Range(spec.min_value,
                                                                     spec.max_value))
    if spec.kind == "multi":
        return fields.List(fields.Str(validate=validate.OneOf(spec.options)))
    return fields.Str(validate=validate.OneOf(spec.options))


_schemas: dict[tuple[str, tuple[str, ...]], Schema] = {}


def section_schema(section: Section) -> Schema:
    """The schema of one screen's post: its answers, the action and the shown items."""
    key = (section.link_id, section.link_ids)
    cached = _schemas.get(key)
    if cached is not None:
        return cached
    declared: dict[str, fields.Field[Any]] = {
        q.link_id: _answer_field(q) for q in section.questions}
    declared["action"] = fields.Str(required=True, validate=validate.OneOf(SECTION_ACTIONS))
    declared["shown"] = fields.List(fields.Str(validate=validate.OneOf(section.link_ids)))
    schema = _Form.from_dict(declared, name=f"Section_{section.link_id}")()
    _schemas[key] = schema
    return schema


def section_form_data(section: Section, form: MultiDict[str, str]) -> dict[str, Any]:
    """A screen's posted fields as the schema expects them (lists where several are
    allowed; a repeated single-answer field stays a list and so fails validation)."""
    multi = {q.link_id for q in section.questions if q.spec.kind == "multi"} | {"shown"}
    data: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        if key in multi:
            data[key] = [v for v in values if v.strip()]
        else:
            data[key] = values[0] if len(values) == 1 else values
    return data
