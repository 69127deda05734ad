"""Forms of the emergency pages (GOV.UK widgets). The guided plan form has one form per
page; `STEPS` lists them in order."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import BooleanField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

CONTACT_ROWS = 3
MEDICATION_ROWS = 4


class PinForm(FlaskForm):
    pin = StringField(
        "Card PIN",
        description="The 8 digits on the card, read out by the caller",
        widget=GovTextInput(),
        validators=[
            DataRequired("Enter the 8-digit PIN from the card"),
            Regexp(r"^[\d\s-]{8,12}$", message="Enter the PIN as 8 digits, like 1234 5678"),
        ],
    )
    submit = SubmitField("Find the plan", widget=GovSubmitInput())


class PersonForm(FlaskForm):
    carer_id = SelectField("Carer", coerce=int, widget=GovSelect(), validators=[Optional()])
    is_test = BooleanField(
        "This is a test plan for drills (its card contacts nobody real)",
        widget=GovCheckboxInput(),
    )
    name = StringField(
        "Name of the person cared for",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the name of the person cared for")],
    )
    date_of_birth = StringField(
        "Their date of birth",
        description="For example, 27 3 1950",
        widget=GovTextInput(),
        validators=[DataRequired("Enter their date of birth")],
    )
    address = TextAreaField(
        "Their address",
        widget=GovTextArea(),
        validators=[DataRequired("Enter the address where they live")],
    )
    postcode = StringField(
        "Postcode",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the postcode"), Length(max=10)],
    )
    safe_alone = TextAreaField("Can they safely be left alone? For how long?", widget=GovTextArea())
    submit = SubmitField("Continue", widget=GovSubmitInput())


class AccessForm(FlaskForm):
    key_safe_code = StringField(
        "Key-safe code",
        description="Locked: operators see it only during an emergency, and each look is logged",
        widget=GovTextInput(),
        validators=[Length(max=32)],
    )
    key_safe_location = StringField("Where the key safe is", widget=GovTextInput())
    key_holder = StringField("Neighbour or friend who holds a key", widget=GovTextInput())
    notes = TextAreaField("Anything else about getting in", widget=GovTextArea())
    submit = SubmitField("Continue", widget=GovSubmitInput())


class NeedsForm(FlaskForm):
    personal_care = TextAreaField("Personal care", widget=GovTextArea())
    mobility = TextAreaField("Mobility", widget=GovTextArea())
    continence = TextAreaField("Continence", widget=GovTextArea())
    eating_drinking = TextAreaField("Eating and drinking", widget=GovTextArea())
    communication = TextAreaField("Communication", widget=GovTextArea())
    behaviour = TextAreaField("Behaviour and what helps", widget=GovTextArea())
    routines = TextAreaField("Routines", widget=GovTextArea())
    faith_culture = TextAreaField("Faith and culture", widget=GovTextArea())
    submit = SubmitField("Continue", widget=GovSubmitInput())


def _medication_form() -> type[FlaskForm]:
    attrs: dict[str, object] = {}
    for row in range(1, MEDICATION_ROWS + 1):
        attrs[f"med{row}_name"] = StringField(f"Medicine {row}: name", widget=GovTextInput())
        attrs[f"med{row}_dose"] = StringField(f"Medicine {row}: dose", widget=GovTextInput())
        attrs[f"med{row}_times"] = StringField(
            f"Medicine {row}: when it is taken", widget=GovTextInput()
        )
        attrs[f"med{row}_managed_by"] = StringField(
            f"Medicine {row}: who manages it", widget=GovTextInput()
        )
        attrs[f"med{row}_stored_where"] = StringField(
            f"Medicine {row}: where it is kept", widget=GovTextInput()
        )
    attrs["allergies"] = TextAreaField("Allergies", widget=GovTextArea())
    attrs["gp"] = TextAreaField("GP surgery and phone number", widget=GovTextArea())
    attrs["professionals"] = TextAreaField(
        "Other professionals (district nurse, social worker)", widget=GovTextArea()
    )
    attrs["submit"] = SubmitField("Continue", widget=GovSubmitInput())
    return type("MedicationForm", (FlaskForm,), attrs)


MedicationForm = _medication_form()


def _contacts_form() -> type[FlaskForm]:
    attrs: dict[str, object] = {}
    for row in range(1, CONTACT_ROWS + 1):
        attrs[f"c{row}_name"] = StringField(f"Contact {row}: name", widget=GovTextInput())
        attrs[f"c{row}_relationship"] = StringField(
            f"Contact {row}: relationship to the carer", widget=GovTextInput()
        )
        attrs[f"c{row}_phone"] = StringField(f"Contact {row}: phone number", widget=GovTextInput())
        attrs[f"c{row}_availability"] = StringField(
            f"Contact {row}: when they can be reached", widget=GovTextInput()
        )
        attrs[f"c{row}_can_step_in"] = BooleanField(
            f"Contact {row} can step in and care", widget=GovCheckboxInput()
        )
        attrs[f"c{row}_has_key"] = BooleanField(
            f"Contact {row} holds a key", widget=GovCheckboxInput()
        )
        attrs[f"c{row}_consent"] = BooleanField(
            f"Contact {row} agreed to be named in this plan", widget=GovCheckboxInput()
        )
    attrs["submit"] = SubmitField("Continue", widget=GovSubmitInput())
    return type("ContactsForm", (FlaskForm,), attrs)


ContactsForm = _contacts_form()


class CareForm(FlaskForm):
    arrangements = TextAreaField("How replacement care should be arranged", widget=GovTextArea())
    hours = SelectField(
        "For how long",
        choices=[("24", "Up to 24 hours"), ("48", "Up to 48 hours"), ("72", "Up to 72 hours")],
        default="72",
        widget=GovSelect(),
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class ConsentForm(FlaskForm):
    carer = BooleanField("The carer agrees to this plan", widget=GovCheckboxInput())
    cared_for = RadioField(
        "Did the person cared for agree?",
        choices=[
            ("yes", "Yes, they agreed"),
            ("no", "No, they do not agree"),
            ("best_interests", "They cannot decide: a best-interests decision was made"),
        ],
        widget=GovRadioInput(),
        validators=[DataRequired("Say whether the person cared for agreed")],
    )
    best_interests_record = TextAreaField(
        "Best-interests record: who decided, when and why", widget=GovTextArea()
    )
    recorded_by = StringField(
        "Consent recorded by",
        widget=GovTextInput(),
        validators=[DataRequired("Enter who recorded the consent")],
    )
    recorded_on = StringField(
        "Date consent was recorded",
        description="For example, 22 11 2026",
        widget=GovTextInput(),
        validators=[DataRequired("Enter the date consent was recorded")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


STEPS: list[tuple[str, str, type[FlaskForm]]] = [
    ("person", "The person cared for", PersonForm),
    ("access", "Getting in", AccessForm),
    ("needs", "Their needs", NeedsForm),
    ("medication", "Medication, allergies and GP", MedicationForm),
    ("contacts", "Contacts, in the order to call them", ContactsForm),
    ("care", "Replacement care", CareForm),
    ("consent", "Consent", ConsentForm),
]


class NoteForm(FlaskForm):
    kind = SelectField(
        "What happened",
        choices=[
            ("note", "Note"),
            ("call", "Phone call"),
            ("sms", "Text message"),
            ("handover", "Handover note for the next shift"),
        ],
        widget=GovSelect(),
    )
    text = TextAreaField(
        "Details", widget=GovTextArea(), validators=[DataRequired("Write what happened")]
    )
    submit = SubmitField("Add to the timeline", widget=GovSubmitInput())


class CloseForm(FlaskForm):
    outcome = TextAreaField(
        "Outcome",
        description="How the emergency ended and who is caring now",
        widget=GovTextArea(),
        validators=[DataRequired("Enter the outcome")],
    )
    submit = SubmitField("Close the incident", widget=GovSubmitInput())


class AuditSearchForm(FlaskForm):
    class Meta:
        csrf = False

    action = StringField(
        "Action", description="For example, emergency.pin_lookup", widget=GovTextInput()
    )
    person = StringField("Person (name or email)", widget=GovTextInput())
    date_from = StringField(
        "From date", description="For example, 1 11 2026", widget=GovTextInput()
    )
    date_to = StringField("To date", description="For example, 22 11 2026", widget=GovTextInput())
    submit = SubmitField("Search", widget=GovSubmitInput())
