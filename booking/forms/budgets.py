"""Forms for budgets: allocate, adjust, import allocations, statement dates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from govuk_frontend_wtf.wtforms_widgets import (
    GovDateInput,
    GovFileInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import (
    DateField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from app.money import parse_pounds
from booking.models.budgets import AdjustmentTag, BudgetKind, TrancheSchedule
from booking.services.budgets import (
    DATES_BETWEEN,
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_REPORT_MONTHS,
    months_covered,
)


class UkDateField(DateField):
    """Day, month and year boxes, with a plain-English message when the date is wrong."""

    def __init__(self, label: str, message: str, **kwargs: Any) -> None:
        super().__init__(label, format="%d %m %Y", widget=GovDateInput(), **kwargs)
        self.wrong_message = message

    def process_formdata(self, valuelist: list[Any]) -> None:
        # The widget shows day, month and year boxes: always hand it exactly three values.
        valuelist = ([str(v) for v in valuelist] + ["", "", ""])[:3]
        self.raw_data = valuelist
        if not any(v.strip() for v in valuelist):
            self.data = None
            return
        text = " ".join(v.strip() for v in valuelist)
        try:
            self.data = datetime.strptime(text, "%d %m %Y").date()  # noqa: DTZ007 - a date
        except ValueError as exc:
            self.data = None
            raise ValueError(self.wrong_message) from exc


MAX_AMOUNT_PENCE = 100_000_000


def _in_range(what: str, day: date | None) -> None:
    """Dates outside 2000–2100 are typing slips (or probes), and would overflow date sums."""
    if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValidationError(f"The {what} must be {DATES_BETWEEN}")


def _pounds(field: Any) -> int:
    try:
        pence = parse_pounds(field.data or "")
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    except ArithmeticError as exc:  # decimal.InvalidOperation for 1E30, Infinity, NaN
        raise ValidationError("Enter an amount in pounds, like 125.50") from exc
    if pence <= 0:
        raise ValidationError("Enter an amount more than £0")
    if pence > MAX_AMOUNT_PENCE:
        raise ValidationError("Enter an amount of £1,000,000 or less")
    return pence


KIND_CHOICES = [
    (BudgetKind.DIRECT_PAYMENT.value, "Direct payment"),
    (BudgetKind.COUNCIL_MANAGED.value, "Managed by the council"),
    (BudgetKind.MIXED.value, "Mixed (part direct payment, part managed)"),
]
SCHEDULE_CHOICES = [
    (TrancheSchedule.WHOLE.value, "All of it at the start"),
    (TrancheSchedule.FOUR_WEEKLY.value, "In equal parts every 4 weeks"),
    (TrancheSchedule.MONTHLY.value, "In equal parts every month"),
]
TAG_CHOICES = [
    (AdjustmentTag.ASSESSMENT.value, "A new assessment of needs"),
    (AdjustmentTag.CORRECTION.value, "Correcting a mistake"),
    (AdjustmentTag.CARING_ROLE.value, "The caring the carer does"),
    (AdjustmentTag.OTHER.value, "Something else"),
]


class AllocateForm(FlaskForm):
    carer_id = SelectField(
        "Carer",
        coerce=int,
        widget=GovSelect(),
        validators=[InputRequired("Choose the carer")],
    )
    kind = RadioField(
        "How is the money managed?",
        choices=KIND_CHOICES,
        widget=GovRadioInput(),
        validators=[InputRequired("Choose how the money is managed")],
    )
    period_start = UkDateField(
        "Start of the period",
        "Enter the start date as numbers, like 1 4 2027",
        validators=[InputRequired("Enter the start of the period")],
        description="For example, 1 4 2027",
    )
    period_end = UkDateField(
        "End of the period",
        "Enter the end date as numbers, like 31 3 2028",
        validators=[InputRequired("Enter the end of the period")],
        description="For example, 31 3 2028",
    )
    amount = StringField(
        "Amount for the whole period, in pounds",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the amount in pounds, like 1200.00")],
    )
    schedule = RadioField(
        "When is the money released?",
        choices=SCHEDULE_CHOICES,
        default=TrancheSchedule.WHOLE.value,
        widget=GovRadioInput(),
        validators=[InputRequired("Choose when the money is released")],
    )
    reason = TextAreaField(
        "Reason",
        widget=GovTextArea(),
        validators=[
            DataRequired("Enter the reason for this budget"),
            Length(max=500, message="Keep the reason to 500 characters or fewer"),
        ],
    )
    submit = SubmitField("Allocate budget", widget=GovSubmitInput())

    amount_pence: int = 0

    def validate_amount(self, field: Any) -> None:
        self.amount_pence = _pounds(field)

    def validate_period_start(self, field: Any) -> None:
        _in_range("start of the period", field.data)

    def validate_period_end(self, field: Any) -> None:
        _in_range("end of the period", field.data)
        start: date | None = self.period_start.data
        if start and field.data and field.data < start:
            raise ValidationError("The end date must be the same as or after the start date")


class AdjustForm(FlaskForm):
    direction = RadioField(
        "Raise or lower the budget?",
        choices=[("raise", "Raise it"), ("lower", "Lower it")],
        widget=GovRadioInput(),
        validators=[InputRequired("Choose whether to raise or lower the budget")],
    )
    amount = StringField(
        "Amount, in pounds",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the amount in pounds, like 50.00")],
    )
    tag = RadioField(
        "What is the change based on?",
        choices=TAG_CHOICES,
        widget=GovRadioInput(),
        validators=[InputRequired("Choose what the change is based on")],
    )
    reason = TextAreaField(
        "Reason",
        widget=GovTextArea(),
        validators=[
            DataRequired("Enter the reason for the change"),
            Length(max=500, message="Keep the reason to 500 characters or fewer"),
        ],
    )
    token = HiddenField(validators=[DataRequired(), Length(max=64)])
    submit = SubmitField("Save the change", widget=GovSubmitInput())

    amount_pence: int = 0

    def validate_amount(self, field: Any) -> None:
        self.amount_pence = _pounds(field)


class ImportForm(FlaskForm):
    file = FileField(
        "Allocations file (CSV)",
        description=(
            "The export from your resource allocation system, with the columns "
            "carer_reference, period_start, period_end, amount and kind"
        ),
        widget=GovFileInput(),
        validators=[
            FileRequired("Choose a CSV file to upload"),
            FileAllowed(["csv", "txt"], "The file must be a CSV file"),
        ],
    )
    submit = SubmitField("Check the file", widget=GovSubmitInput())


class ConfirmImportForm(FlaskForm):
    content = HiddenField(validators=[DataRequired()])
    submit = SubmitField("Import these allocations", widget=GovSubmitInput())


class DateRangeForm(FlaskForm):
    """GET form for statement and report date ranges."""

    class Meta:
        csrf = False

    start = UkDateField("From", "Enter the date as numbers, like 1 4 2027", validators=[Optional()])
    end = UkDateField("To", "Enter the date as numbers, like 31 3 2028", validators=[Optional()])
    submit = SubmitField("Show", widget=GovSubmitInput())

    max_months: int | None = None

    def validate_start(self, field: Any) -> None:
        _in_range("start date", field.data)

    def validate_end(self, field: Any) -> None:
        _in_range("end date", field.data)
        start: date | None = self.start.data
        if not (start and field.data) or self.start.errors:
            return
        if field.data < start:
            raise ValidationError("The end date must be the same as or after the start date")
        if self.max_months is not None and months_covered(start, field.data) > self.max_months:
            raise ValidationError(
                f"The dates can cover at most {self.max_months} months "
                f"({self.max_months // 12} years). Choose a later start or an earlier end"
            )


class ReportRangeForm(DateRangeForm):
    """The spend report's dates: one bar a month, so at most MAX_REPORT_MONTHS of them."""

    max_months = MAX_REPORT_MONTHS
