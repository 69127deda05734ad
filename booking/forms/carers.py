"""Forms for registering a carer and for the people a carer nominates."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovSubmitInput, GovTextInput
from wtforms import EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional

from booking.forms.budgets import UkDateField

EMAIL_FORMAT = "Enter an email address in the correct format, like name@example.com"


class CarerForm(FlaskForm):
    name = StringField(
        "Full name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the carer's full name"), Length(max=200)],
    )
    email = EmailField(
        "Email address",
        description="We send a link here so they can choose a password.",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the carer's email address"), Email(EMAIL_FORMAT)],
    )
    phone = StringField(
        "Mobile phone number (optional)",
        description="For text messages about their breaks. For example, 07911 123 456",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=30, message="Enter a UK phone number")],
    )
    postcode = StringField(
        "Postcode (optional)",
        widget=GovTextInput(),
        validators=[Optional(), Length(max=10, message="Enter a real postcode, like LS6 2AB")],
    )
    date_of_birth = UkDateField(
        "Date of birth (optional)",
        "Enter the date of birth as numbers, like 27 3 2009",
        description="Carers under 18 are young carers: their budget is never reduced "
        "because of the caring they do. For example, 27 3 2009",
    )
    reference = StringField(
        "Council reference (optional)",
        description="The carer's reference in your resource allocation system",
        widget=GovTextInput(),
        validators=[
            Optional(),
            Length(max=64, message="Enter a reference of 64 characters or less"),
        ],
    )
    submit = SubmitField("Save", widget=GovSubmitInput())


class NominateForm(FlaskForm):
    name = StringField(
        "Their full name",
        widget=GovTextInput(),
        validators=[DataRequired("Enter their full name"), Length(max=200)],
    )
    email = EmailField(
        "Their email address",
        description="We send them a link to sign in.",
        widget=GovTextInput(),
        validators=[DataRequired("Enter their email address"), Email(EMAIL_FORMAT)],
    )
    submit = SubmitField("Add this person", widget=GovSubmitInput())


class RemoveForm(FlaskForm):
    submit = SubmitField("Remove", widget=GovSubmitInput())
