"""Forms for workers' pages: sign-up, profile, rules, availability, checks, vetting and
carers' search (GOV.UK widgets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileSize
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxesInput,
    GovCheckboxInput,
    GovDateInput,
    GovFileInput,
    GovPasswordInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from booking.models.workers import CheckKind
from booking.services.availability import MAX_WEEKLY_SLOTS, WEEKDAYS
from booking.services.vetting import CHECK_NAMES
from booking.services.workers import GENDERS, MAX_TRAVEL_RADIUS_KM, SKILLS

TIME_PATTERN = r"^\s*([01]?\d|2[0-3])[:.]?([0-5]\d)\s*$"
TIME_MESSAGE = "Enter a time in 24-hour format, like 09:30 or 17:00"


class GovDateField(DateField):
    """A day/month/year date that renders even when the three boxes were not sent."""

    def process(self, formdata: Any, data: Any = None, extra_filters: Any = None) -> None:
        super().process(formdata, data, extra_filters)
        raw: list[Any] | None = getattr(self, "raw_data", None)
        if raw is not None and len(raw) != 3:
            self.raw_data = None


def _whole(label: str, low: int, high: int) -> list[Any]:
    return [
        InputRequired(f"Enter {label}"),
        NumberRange(min=low, max=high, message=f"Enter {label} from {low} to {high}"),
    ]


class SignUpForm(FlaskForm):
    council = SelectField(
        "Which council area do you work in?",
        widget=GovSelect(),
        validators=[DataRequired("Choose the council area you work in")],
    )
    name = StringField(
        "Full name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter your full name"), Length(max=200)],
    )
    email = EmailField(
        "Email address",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter your email address"),
            Email("Enter an email address in the correct format, like name@example.com"),
        ],
    )
    phone = StringField(
        "Mobile phone number",
        description="We text you about booking requests",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=20)],
    )
    postcode = StringField(
        "Home postcode",
        description="Carers see only how far away you are, never your address",
        widget=GovTextInput(),
        validators=[DataRequired("Enter your home postcode"), Length(max=10)],
    )
    password = PasswordField(
        "Create a password",
        description="At least 10 characters",
        widget=GovPasswordInput(),
        validators=[
            DataRequired("Enter a password"),
            Length(min=10, message="Your password must be at least 10 characters long"),
        ],
    )
    submit = SubmitField("Create my account", widget=GovSubmitInput())


class ProfileForm(FlaskForm):
    display_name = StringField(
        "Name carers will see",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the name carers will see"), Length(max=100)],
    )
    bio = TextAreaField(
        "About you",
        description="A few sentences about your experience and what you enjoy",
        widget=GovTextArea(),
        validators=[Optional(), Length(max=2000, message="Use 2,000 characters or fewer")],
    )
    photo = FileField(
        "Photo (optional)",
        description="A clear photo of your face, JPEG or PNG, smaller than 2 MB",
        widget=GovFileInput(),
        validators=[
            FileAllowed(["jpg", "jpeg", "png", "webp"], "The photo must be a JPEG, PNG or WebP"),
            FileSize(2 * 1024 * 1024, message="The photo must be smaller than 2 MB"),
        ],
    )
    skills = SelectMultipleField(
        "Skills",
        choices=list(SKILLS.items()),
        widget=GovCheckboxesInput(),
        validators=[Optional()],
    )
    languages = StringField(
        "Languages you speak",
        description="Separate them with commas, like English, Punjabi",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=300)],
    )
    gender = RadioField(
        "Gender",
        choices=list(GENDERS.items()),
        widget=GovRadioInput(),
        validators=[DataRequired("Choose a gender, or 'Prefer not to say'")],
    )
    phone = StringField(
        "Mobile phone number (optional)",
        description="We text you about booking requests. Carers never see it",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=20, message="Enter a phone number, like 07911 123 456")],
    )
    postcode = StringField(
        "Home postcode",
        widget=GovTextInput(),
        validators=[DataRequired("Enter your home postcode"), Length(max=10)],
    )
    travel_radius_km = IntegerField(
        "How far will you travel, in kilometres?",
        widget=GovTextInput(),
        validators=_whole("a distance", 1, MAX_TRAVEL_RADIUS_KM),
    )
    hourly_rate = StringField(
        "Hourly rate in pounds",
        description="For example, 18.50",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter your hourly rate"),
            Regexp(r"^\s*£?\d{1,3}(\.\d{1,2})?\s*$", message="Enter an amount like 18.50"),
        ],
    )
    evening_premium_percent = IntegerField(
        "Evening extra (8pm to 7am), per cent",
        widget=GovTextInput(),
        default=0,
        validators=_whole("a percentage", 0, 200),
    )
    weekend_premium_percent = IntegerField(
        "Weekend extra, per cent",
        widget=GovTextInput(),
        default=0,
        validators=_whole("a percentage", 0, 200),
    )
    bank_holiday_premium_percent = IntegerField(
        "Bank holiday extra, per cent",
        widget=GovTextInput(),
        default=0,
        validators=_whole("a percentage", 0, 200),
    )
    submit = SubmitField("Save profile", widget=GovSubmitInput())


class RulesForm(FlaskForm):
    min_notice_minutes = IntegerField(
        "Least notice you need, in minutes",
        description="For example, 120 for 2 hours",
        widget=GovTextInput(),
        validators=_whole("the notice in minutes", 0, 14 * 24 * 60),
    )
    min_session_minutes = IntegerField(
        "Shortest session, in minutes",
        description="At least 60",
        widget=GovTextInput(),
        validators=_whole("the shortest session in minutes", 60, 24 * 60),
    )
    max_hours_per_week = IntegerField(
        "Most hours a week",
        widget=GovTextInput(),
        validators=_whole("the most hours a week", 1, 80),
    )
    buffer_minutes = IntegerField(
        "Gap between bookings for travel, in minutes",
        widget=GovTextInput(),
        validators=_whole("the gap in minutes", 0, 240),
    )
    response_deadline_hours = IntegerField(
        "Hours you have to answer a request",
        widget=GovTextInput(),
        validators=_whole("the hours to answer", 1, 72),
    )
    favourites_instant_book = BooleanField(
        "Carers who saved me as a favourite may book me straight away",
        widget=GovCheckboxInput(),
    )
    submit = SubmitField("Save rules", widget=GovSubmitInput())


# The page shows every stored time plus one empty row to add another; never fewer rows
# than the API may have stored, so saving the page never drops a time.
MAX_SLOTS_PER_DAY = MAX_WEEKLY_SLOTS
# An end time may also be 24:00 (or 00:00), meaning midnight at the end of the day.
END_PATTERN = r"^\s*(([01]?\d|2[0-3])[:.]?([0-5]\d)|24[:.]?00)\s*$"


def slot_field_name(weekday: int, row: int, part: str) -> str:
    """day0_start, day0_end for Monday's first time; day0_start_2, day0_end_2 for its second."""
    return f"day{weekday}_{part}" if row == 0 else f"day{weekday}_{part}_{row + 1}"


class WeeklyForm(FlaskForm):
    """Times per weekday, several a day (09:00 to 12:00 and 14:00 to 18:00). A row left
    empty is no time; make the class with `weekly_form_class` for the rows to show."""

    submit = SubmitField("Save my week", widget=GovSubmitInput())
    rows: tuple[int, ...] = (1,) * 7

    def day_rows(self) -> list[tuple[str, list[tuple[Any, Any]]]]:
        """Each weekday's name and its (start, end) field pairs, for the template."""
        return [
            (
                WEEKDAYS[d],
                [
                    (
                        getattr(self, slot_field_name(d, i, "start")),
                        getattr(self, slot_field_name(d, i, "end")),
                    )
                    for i in range(self.rows[d])
                ],
            )
            for d in range(7)
        ]

    def filled(self) -> list[tuple[int, int, str, str]]:
        """(weekday, row, start text, end text) of every row with both times given."""
        found = []
        for d, (_name, pairs) in enumerate(self.day_rows()):
            for i, (start, end) in enumerate(pairs):
                if (start.data or "").strip() and (end.data or "").strip():
                    found.append((d, i, start.data, end.data))
        return found

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        for name, pairs in self.day_rows():
            for start, end in pairs:
                has_start = bool((start.data or "").strip())
                if has_start != bool((end.data or "").strip()):
                    target = end if has_start else start
                    target.errors = [
                        *target.errors,
                        f"Enter both a start and an end time on {name}, or neither",
                    ]
                    ok = False
        return ok


def weekly_form_class(rows: Sequence[int]) -> type[WeeklyForm]:
    """A WeeklyForm with `rows[d]` time rows for weekday d (at least one each)."""
    counts = tuple(max(1, min(n, MAX_SLOTS_PER_DAY)) for n in rows)
    attrs: dict[str, Any] = {"rows": counts}
    for d in range(7):
        day = WEEKDAYS[d]
        for i in range(counts[d]):
            which = "" if i == 0 else f" (time {i + 1})"
            attrs[slot_field_name(d, i, "start")] = StringField(
                f"{day}{which}: from",
                widget=GovTextInput(),
                validators=[
                    Optional(),
                    Regexp(
                        TIME_PATTERN,
                        message=f"Enter {day}'s start time in 24-hour format, like 09:30",
                    ),
                ],
            )
            attrs[slot_field_name(d, i, "end")] = StringField(
                f"{day}{which}: to",
                widget=GovTextInput(),
                validators=[
                    Optional(),
                    Regexp(
                        END_PATTERN,
                        message=f"Enter {day}'s end time in 24-hour format, like 17:00 (24:00 is midnight)",
                    ),
                ],
            )
    return type("SizedWeeklyForm", (WeeklyForm,), attrs)


def rows_posted(formdata: Mapping[str, Any]) -> list[int]:
    """How many time rows per weekday a posted week form had."""
    rows = [1] * 7
    for d in range(7):
        for i in range(1, MAX_SLOTS_PER_DAY):
            if (
                slot_field_name(d, i, "start") in formdata
                or slot_field_name(d, i, "end") in formdata
            ):
                rows[d] = i + 1
    return rows


class ExceptionForm(FlaskForm):
    kind = RadioField(
        "What kind of change?",
        choices=[
            ("unavailable", "Time off (I am not available)"),
            ("extra", "Extra time I can work"),
        ],
        default="unavailable",
        widget=GovRadioInput(),
        validators=[DataRequired("Choose time off or extra time")],
    )
    day = GovDateField(
        "Date",
        description="For example, 27 3 2027",
        format="%d %m %Y",
        widget=GovDateInput(),
        validators=[InputRequired("Enter the date")],
    )
    start = StringField(
        "From",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the start time"),
            Regexp(TIME_PATTERN, message=TIME_MESSAGE),
        ],
    )
    end = StringField(
        "To",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the end time"), Regexp(TIME_PATTERN, message=TIME_MESSAGE)],
    )
    note = StringField(
        "Note (optional)", widget=GovTextInput(), validators=[Optional(), Length(max=200)]
    )
    submit = SubmitField("Add this change", widget=GovSubmitInput())


class CheckForm(FlaskForm):
    kind = SelectField(
        "Which check?",
        choices=[(k.value, CHECK_NAMES[k].capitalize()) for k in CheckKind],
        widget=GovSelect(),
        validators=[DataRequired("Choose which check")],
    )
    reference = StringField(
        "Certificate number, policy number or referee's name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the number or the referee's name"), Length(max=200)],
    )
    issued_on = GovDateField(
        "Date issued",
        description="For example, 27 3 2026",
        format="%d %m %Y",
        widget=GovDateInput(),
        validators=[InputRequired("Enter the date it was issued")],
    )
    expires_on = GovDateField(
        "Date it runs out (if it does)",
        format="%d %m %Y",
        widget=GovDateInput(),
        validators=[Optional()],
    )
    update_service = BooleanField(
        "This DBS certificate is on the DBS update service", widget=GovCheckboxInput()
    )
    submit = SubmitField("Save check", widget=GovSubmitInput())


class DecisionForm(FlaskForm):
    action = RadioField(
        "Decision",
        choices=[
            ("approve", "Approve for two years"),
            ("reject", "Turn down"),
            ("suspend", "Suspend"),
            ("reinstate", "Reinstate"),
        ],
        widget=GovRadioInput(),
        validators=[DataRequired("Choose a decision")],
    )
    reason = TextAreaField(
        "Reason",
        description="Needed to turn down or suspend. The worker will see it.",
        widget=GovTextArea(),
        validators=[Length(max=2000)],
    )
    submit = SubmitField("Record decision", widget=GovSubmitInput())

    def validate_reason(self, field: Any) -> None:
        if self.action.data in {"reject", "suspend"} and not (field.data or "").strip():
            raise ValidationError("Enter the reason. The worker will see it")


class OrganisationForm(FlaskForm):
    name = StringField(
        "Organisation name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter your organisation's name"), Length(max=200)],
    )
    submit = SubmitField("Set up organisation", widget=GovSubmitInput())


class AddWorkerForm(FlaskForm):
    name = StringField(
        "Worker's full name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the worker's full name"), Length(max=200)],
    )
    email = EmailField(
        "Worker's email address",
        description="They set their own password with 'I have forgotten my password'",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the worker's email address"),
            Email("Enter an email address in the correct format, like name@example.com"),
        ],
    )
    phone = StringField(
        "Worker's mobile number", widget=GovTextInput(), validators=[Optional(), Length(max=20)]
    )
    submit = SubmitField("Add worker", widget=GovSubmitInput())


class SearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search changes nothing

    day = GovDateField(
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
    postcode = StringField(
        "Postcode where the care is needed",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the postcode where the care is needed"), Length(max=10)],
    )
    skills = SelectMultipleField(
        "Skills needed (optional)",
        choices=list(SKILLS.items()),
        widget=GovCheckboxesInput(),
        validators=[Optional()],
    )
    languages = StringField(
        "Language (optional)",
        description="For example, Punjabi",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=100)],
    )
    gender = SelectField(
        "Worker's gender (optional)",
        choices=[("", "No preference"), *[(k, v) for k, v in GENDERS.items() if k != "not_said"]],
        widget=GovSelect(),
        validators=[Optional()],
    )
    submit = SubmitField("Find workers", widget=GovSubmitInput())
