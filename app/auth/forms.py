"""Sign-in and account forms (GOV.UK widgets)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovPasswordInput, GovSubmitInput, GovTextInput
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp


class SignInForm(FlaskForm):
    email = EmailField(
        "Email address",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter your email address"),
            Email("Enter an email address in the correct format, like name@example.com"),
        ],
    )
    password = PasswordField(
        "Password", widget=GovPasswordInput(), validators=[DataRequired("Enter your password")]
    )
    submit = SubmitField("Sign in", widget=GovSubmitInput())


class TotpForm(FlaskForm):
    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app shows now",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the 6-digit security code"),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="Enter the code as 6 digits, like 123456"),
        ],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class ResetRequestForm(FlaskForm):
    email = EmailField(
        "Email address",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter your email address"),
            Email("Enter an email address in the correct format, like name@example.com"),
        ],
    )
    submit = SubmitField("Send me a link", widget=GovSubmitInput())


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        description="At least 10 characters. A few words strung together is easy to remember.",
        widget=GovPasswordInput(),
        validators=[
            DataRequired("Enter a new password"),
            Length(min=10, message="Your password must be at least 10 characters long"),
        ],
    )
    confirm = PasswordField(
        "Type the new password again",
        widget=GovPasswordInput(),
        validators=[
            DataRequired("Type the new password again"),
            EqualTo("password", message="The two passwords do not match"),
        ],
    )
    submit = SubmitField("Save new password", widget=GovSubmitInput())
