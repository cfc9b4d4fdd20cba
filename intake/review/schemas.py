"""marshmallow schemas for what the review pages receive: the worklist's GET filters and
the case view's four action forms.

Shape only, at the boundary (STYLE 12): codes are checked against the CodeSystems and the
rule set (read from files, never from ``current_app``); whether an action makes sense for
the intake (the flag fired, the department differs, the findings are new) is decided by
``intake.review.actions``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from intake.review.actions import REASON_MAX, department_codes
from intake.review.worklist import (
    DEFAULT_STATE,
    MAX_PAGE,
    PENDING,
    STATE_FILTERS,
    flag_info,
    staff_exam_items,
    urgency_codes,
)

# The worklist's date filter: anything outside is a typo (and far dates would overflow
# the conversion to UTC).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
# Examination answers: "not examined" leaves an item unanswered (it is not sent).
EXAM_CHOICES = ("yes", "no", "not_examined")


def _drop_blanks(data: Any) -> Any:
    """Blank fields are absent: an empty select means "any", an empty box "not given"."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
        out[key] = value
    return out


class WorklistFilterSchema(Schema):
    """GET parameters of /review and its row refresh. Unknown parameters are ignored
    (``lang`` is the page's, and a bookmarked link from an older version still opens);
    a bad value of a known one is refused, naming the filter."""

    class Meta:
        unknown = EXCLUDE

    state = fields.Str(load_default=DEFAULT_STATE, validate=validate.OneOf(STATE_FILTERS))
    urgency = fields.Str(validate=validate.OneOf((*urgency_codes(), PENDING)))
    department = fields.Str(validate=validate.OneOf(sorted(department_codes())))
    flag = fields.Str(validate=validate.OneOf(tuple(flag_info())))
    date_from = fields.Date(validate=validate.Range(FIRST_DAY, LAST_DAY))
    date_to = fields.Date(validate=validate.Range(FIRST_DAY, LAST_DAY))
    page = fields.Int(load_default=1, strict=False, validate=validate.Range(1, MAX_PAGE))

    @pre_load
    def _blanks(self, data: Any, **_: Any) -> Any:
        return _drop_blanks(data)

    @validates_schema
    def _dates_in_order(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("date_from"), data.get("date_to")
        if start is not None and end is not None and start > end:
            raise ValidationError("from is after to", field_name="dates")


class _ActionForm(Schema):
    """Every action form carries the CSRF token (checked before the view) and the triage
    revision the practitioner was looking at."""

    class Meta:
        unknown = RAISE

    csrf_token = fields.Str(load_only=True)
    revision = fields.Int(required=True, strict=False, validate=validate.Range(1, 1_000_000))

    @pre_load
    def _blanks(self, data: Any, **_: Any) -> Any:
        return _drop_blanks(data)


class AcknowledgeForm(_ActionForm):
    flag = fields.Str(required=True, validate=validate.Length(1, 40))


class DepartmentForm(_ActionForm):
    department = fields.Str(required=True,
                            validate=validate.OneOf(sorted(department_codes())))
    reason = fields.Str(required=True, validate=validate.Length(1, REASON_MAX))


class ReviewedForm(_ActionForm):
    pass


class _FindingsBase(_ActionForm):
    @post_load
    def _findings(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """yes/no become the findings to record; "not examined" items are left out."""
        items = staff_exam_items()
        findings = {k: data[k] == "yes" for k in items if data.get(k) in ("yes", "no")}
        return {"revision": data["revision"], "findings": findings}


# One field per staff examination item of the Questionnaire (no second list of them).
FindingsForm: type[_ActionForm] = type("FindingsForm", (_FindingsBase,), {
    key: fields.Str(validate=validate.OneOf(EXAM_CHOICES)) for key in staff_exam_items()})
