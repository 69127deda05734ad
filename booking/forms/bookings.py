"""Forms for booking a break and everything that follows it."""

from __future__ import annotations

import re
from datetime import date, time

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxInput,
    GovDateInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

TIME_PATTERN = r"^\s*([01]?\d|2[0-3])[:.]?([0-5]\d)\s*$"
TIME_MESSAGE = "Enter a time in 24-hour format, like 09:30 or 17:00"
# Ids are 32-bit integer columns: a bigger number is refused here with a message, never
# passed to the database (SQLite overflows, PostgreSQL raises a DataError: a 500 either way).
MAX_ID = 2**31 - 1
WORKER_NUMBER_MESSAGE = "Enter the worker number shown on the worker's page"


def id_range(message: str) -> NumberRange:
    return NumberRange(min=1, max=MAX_ID, message=message)


def parse_time(text: str) -> time:
    match = re.match(TIME_PATTERN, text or "")
    if match is None:
        raise ValueError(text)
    return time(int(match.group(1)), int(match.group(2)))


class BookForm(FlaskForm):
    """Who, when and where. The same form is shown again, hidden, on the check page."""

    carer_id = SelectField(
        "Who is the break for?", coerce=int, widget=GovSelect(), validate_choice=True
    )
    carer_reference = StringField(
        "Carer's reference number",
        description="From the council's records, like CR-1001",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=64)],
    )
    worker_id = IntegerField(
        "Worker number",
        widget=GovTextInput(),
        validators=[InputRequired("Choose a worker first"), id_range(WORKER_NUMBER_MESSAGE)],
    )
    day = DateField(
        "Date of the break",
        description="For example, 27 3 2027",
        format="%d %m %Y",
        widget=GovDateInput(),
        validators=[InputRequired("Enter the date of the break")],
    )
    start = StringField(
        "Start time",
        description="24-hour clock, like 10:00",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the start time"),
            Regexp(TIME_PATTERN, message=TIME_MESSAGE),
        ],
    )
    end = StringField(
        "End time",
        description="24-hour clock, like 14:00",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the end time"), Regexp(TIME_PATTERN, message=TIME_MESSAGE)],
    )
    weeks = SelectField(
        "How many weeks?",
        description="The same time each week, up to 4 weeks",
        choices=[("1", "Just this once"), ("2", "2 weeks"), ("3", "3 weeks"), ("4", "4 weeks")],
        default="1",
        widget=GovSelect(),
    )
    postcode = StringField(
        "Postcode where the break is",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the postcode where the break is"), Length(max=10)],
    )
    address = TextAreaField(
        "Address",
        widget=GovTextArea(),
        validators=[DataRequired("Enter the address"), Length(max=500)],
    )
    support_kind = SelectField("Main kind of support", widget=GovSelect(), validate_choice=True)
    notes = TextAreaField(
        "Notes about the person you care for (optional)",
        description="For example, what they like to do. Do not include anything you would not want the worker to know.",
        widget=GovTextArea(),
        validators=[Optional(), Length(max=2000, message="Notes must be 2000 characters or fewer")],
    )
    share_notes = BooleanField("Share these notes with the worker", widget=GovCheckboxInput())
    top_up = BooleanField("Pay the difference by card", widget=GovCheckboxInput())
    form_token = HiddenField()
    step = HiddenField(default="check")
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_day(self, field: DateField) -> None:
        if isinstance(field.data, date) and field.data.year < 2000:
            raise ValueError("Enter a real date")


class CancelForm(FlaskForm):
    reason = TextAreaField(
        "Why are you cancelling? (optional)",
        widget=GovTextArea(),
        validators=[Optional(), Length(max=500)],
    )
    submit = SubmitField("Yes, cancel this break", widget=GovSubmitInput())


class CompleteForm(FlaskForm):
    """The worker's real start and finish (UK time) on the day of the break."""

    actual_start = StringField(
        "When did you start?",
        description="24-hour clock, like 10:00",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter when you started"),
            Regexp(TIME_PATTERN, message=TIME_MESSAGE),
        ],
    )
    actual_end = StringField(
        "When did you finish?",
        description="24-hour clock, like 14:00",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter when you finished"),
            Regexp(TIME_PATTERN, message=TIME_MESSAGE),
        ],
    )
    submit = SubmitField("Record the break as done", widget=GovSubmitInput())


class DisputeForm(FlaskForm):
    reason = TextAreaField(
        "What was wrong?",
        widget=GovTextArea(),
        validators=[DataRequired("Tell us what was wrong"), Length(max=2000)],
    )
    submit = SubmitField("Send", widget=GovSubmitInput())


class ReviewForm(FlaskForm):
    rating = RadioField(
        "How was the break?",
        choices=[
            ("5", "5 – excellent"),
            ("4", "4 – good"),
            ("3", "3 – all right"),
            ("2", "2 – not good"),
            ("1", "1 – poor"),
        ],
        widget=GovRadioInput(),
        validators=[InputRequired("Choose a rating")],
    )
    text = TextAreaField(
        "Anything you want to say? (optional)",
        description="Council staff can read this. The worker cannot see who wrote it.",
        widget=GovTextArea(),
        validators=[Optional(), Length(max=500, message="Use 500 characters or fewer")],
    )
    submit = SubmitField("Send", widget=GovSubmitInput())


class ConcernForm(FlaskForm):
    text = TextAreaField(
        "What worries you?",
        description="If someone is in danger now, call 999.",
        widget=GovTextArea(),
        validators=[DataRequired("Tell us what worries you"), Length(max=5000)],
    )
    submit = SubmitField("Send to the council now", widget=GovSubmitInput())


class ResolveDisputeForm(FlaskForm):
    refund = StringField(
        "Refund to the budget, in pounds",
        description="Enter 0 to turn the dispute down",
        widget=GovTextInput(),
        validators=[DataRequired("Enter an amount, or 0")],
    )
    note = TextAreaField("Note", widget=GovTextArea(), validators=[Optional(), Length(max=1000)])
    submit = SubmitField("Settle the dispute", widget=GovSubmitInput())


class NoShowForm(FlaskForm):
    reason = TextAreaField(
        "Anything the council should know? (optional)",
        widget=GovTextArea(),
        validators=[Optional(), Length(max=500, message="Use 500 characters or fewer")],
    )
    submit = SubmitField("Yes, the worker did not come", widget=GovSubmitInput())


class WaitForm(FlaskForm):
    worker_id = IntegerField(
        widget=GovTextInput(), validators=[InputRequired(), id_range(WORKER_NUMBER_MESSAGE)]
    )
    day = DateField(
        "Date",
        format="%d %m %Y",
        widget=GovDateInput(),
        validators=[InputRequired("Enter the date")],
    )
    start = StringField(
        "Start time",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the start time"),
            Regexp(TIME_PATTERN, message=TIME_MESSAGE),
        ],
    )
    end = StringField(
        "End time",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the end time"), Regexp(TIME_PATTERN, message=TIME_MESSAGE)],
    )
    carer_id = IntegerField(
        widget=GovTextInput(), validators=[Optional(), id_range("Choose who the break is for")]
    )
    postcode = StringField(widget=GovTextInput(), validators=[Optional(), Length(max=10)])
    address = StringField(widget=GovTextInput(), validators=[Optional(), Length(max=500)])
    submit = SubmitField("Tell me if it frees up", widget=GovSubmitInput())
