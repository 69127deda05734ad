"""The 24-hour phone line as Twilio webhooks (TwiML out), and the operators' rota page.

Every webhook is checked with `twilio_signed` (403 unless Twilio signed it) and answers
from the database alone: calls and SMS go out later through the outbox. Nothing is
spoken to a caller beyond "your plan has been found".
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask import url_for as flask_url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextInput,
)
from twilio.twiml import TwiML
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse
from wtforms import RadioField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired

from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import Role, User
from app.security import roles_required
from app.twilio_backend import twilio_signed
from emergency import phone_services as services
from emergency.phone_services import PinOutcome

bp = Blueprint("phone", __name__)

MAX_PIN_TRIES = 3
GATHER_TIMEOUT_SECONDS = 10
DIAL_TIMEOUT_SECONDS = 20
VOICE = "Polly.Amy"  # a British English voice
LANGUAGE = "en-GB"

GREETING = (
    "Hello. This is the carers' emergency line. "
    "Please type the 8 digit number from the emergency card, using the keypad."
)
RETRY_SILENCE = "We did not hear any numbers. Please type the 8 digit number from the card."
RETRY_MISTYPED = (
    "Sorry, that number did not work. A digit may have been mistyped. "
    "Please type the 8 digit number from the card again, slowly."
)
TO_OPERATOR = "Putting you through to an operator now. Please stay on the line."
FOUND = "Thank you. Your plan has been found. " + TO_OPERATOR
NOBODY_ANSWERED = (
    "We could not reach an operator just now. We are contacting the people named "
    "in the plan. An operator will call you back on this number as soon as they can. "
    "If someone is in danger, hang up and dial 999."
)
CASCADE_ASK = (
    "Hello. This is the carers' emergency line. You are named as an emergency contact "
    "for a carer who needs help now. If you can step in, press 1. "
    "If you cannot, press 2."
)


def url_for(endpoint: str, **values: Any) -> str:
    """A relative URL: Twilio resolves it against the URL it requested (PUBLIC_BASE_URL)."""
    return flask_url_for(endpoint, **values)


def _say(target: TwiML, text: str) -> None:
    target.say(text, voice=VOICE, language=LANGUAGE)


def twiml(response: TwiML) -> Response:
    return Response(str(response), mimetype="text/xml")


def _int_arg(name: str, default: int | None = None) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else default


def _form_int(name: str) -> int | None:
    value = request.form.get(name, "")
    return int(value) if value.isdigit() and len(value) < 7 else None


def _gather_pin(response: VoiceResponse, attempt: int, text: str) -> None:
    gather = Gather(
        num_digits=8,
        input="dtmf",
        timeout=GATHER_TIMEOUT_SECONDS,
        action=url_for("phone.voice_pin", attempt=attempt),
        method="POST",
    )
    _say(gather, text)
    response.append(gather)
    # Silence: Gather falls through to the next verb, which asks again.
    response.redirect(url_for("phone.voice", attempt=attempt + 1), method="POST")


def _dial_operator(
    response: VoiceResponse, numbers: services.DutyNumbers, *, incident_id: int | None
) -> bool:
    """Ring the on-duty operator; the dial action handles no answer. False if nobody's on."""
    if numbers.primary is None:
        return False
    values: dict[str, Any] = {"stage": 1}
    if incident_id is not None:
        values["incident"] = incident_id
    response.dial(
        numbers.primary,
        timeout=DIAL_TIMEOUT_SECONDS,
        action=url_for("phone.voice_dial", **values),
        method="POST",
    )
    return True


@bp.post("/twilio/voice")
@twilio_signed
def voice() -> ResponseReturnValue:
    """A call to the line: greet, gather the PIN; after three silences, an operator."""
    attempt = _int_arg("attempt", 1) or 1
    services.note_call_arrived(request.form.get("CallSid", ""), now=utcnow())
    response = VoiceResponse()
    if attempt > MAX_PIN_TRIES:
        _say(response, TO_OPERATOR)
        numbers = services.duty_numbers(services.council_for_line(request.form.get("To")))
        if not _dial_operator(response, numbers, incident_id=None):
            _say(response, NOBODY_ANSWERED)
            response.hangup()
        return twiml(response)
    _gather_pin(response, attempt, GREETING if attempt == 1 else RETRY_SILENCE)
    return twiml(response)


@bp.post("/twilio/voice/pin")
@twilio_signed
def voice_pin() -> ResponseReturnValue:
    """The caller typed a PIN: a found plan opens an incident and rings the operator."""
    attempt = _int_arg("attempt", 1) or 1
    now = utcnow()
    result = services.check_phone_pin(
        request.form.get("Digits", ""),
        call_sid=request.form.get("CallSid", ""),
        caller_number=request.form.get("From"),
        pin_key=current_app.config["PIN_HMAC_KEY"],
        now=now,
        attempt=attempt,
    )
    response = VoiceResponse()
    if result.outcome is PinOutcome.FOUND and result.incident is not None:
        incident = result.incident
        _say(response, FOUND)
        if not _dial_operator(
            response, services.duty_numbers(incident.council_id), incident_id=incident.id
        ):
            services.record_dial_result(
                incident.id,
                dial_status="no-operator-on-duty",
                stage=2,
                now=now,
                call_sid=request.form.get("CallSid"),
            )
            _say(response, NOBODY_ANSWERED)
            response.hangup()
        return twiml(response)
    if result.outcome is PinOutcome.REFUSED or attempt >= MAX_PIN_TRIES:
        _say(response, TO_OPERATOR)
        numbers = services.duty_numbers(services.council_for_line(request.form.get("To")))
        if not _dial_operator(response, numbers, incident_id=None):
            _say(response, NOBODY_ANSWERED)
            response.hangup()
        return twiml(response)
    _gather_pin(response, attempt + 1, RETRY_MISTYPED)
    return twiml(response)


@bp.post("/twilio/voice/dial")
@twilio_signed
def voice_dial() -> ResponseReturnValue:
    """How the transfer ended. No answer: start the cascade at once, try the fallback."""
    incident_id = _int_arg("incident")
    stage = _int_arg("stage", 1) or 1
    now = utcnow()
    answered = services.record_dial_result(
        incident_id,
        dial_status=request.form.get("DialCallStatus", "no-answer"),
        stage=stage,
        now=now,
        call_sid=request.form.get("CallSid"),
        talked_seconds=_form_int("DialCallDuration"),
    )
    response = VoiceResponse()
    if answered:
        response.hangup()
        return twiml(response)
    council_id = None
    if incident_id is not None:
        incident = db.session.get(services.Incident, incident_id)
        council_id = incident.council_id if incident is not None else None
    else:
        council_id = services.council_for_line(request.form.get("To"))
    numbers = services.duty_numbers(council_id)
    if stage == 1 and numbers.fallback:
        _say(response, "Trying another operator. Please stay on the line.")
        values: dict[str, Any] = {"stage": 2}
        if incident_id is not None:
            values["incident"] = incident_id
        response.dial(
            numbers.fallback,
            timeout=DIAL_TIMEOUT_SECONDS,
            action=url_for("phone.voice_dial", **values),
            method="POST",
        )
        return twiml(response)
    _say(response, NOBODY_ANSWERED)
    response.hangup()
    return twiml(response)


@bp.post("/twilio/voice/cascade")
@twilio_signed
def voice_cascade() -> ResponseReturnValue:
    """The automated cascade call: only a keypress of 1 counts; machines never do."""
    incident_id = _int_arg("incident")
    call_id = _int_arg("call")
    contact_id = _int_arg("contact")
    now = utcnow()
    response = VoiceResponse()
    if request.args.get("step") == "key":
        outcome = services.cascade_call_keypress(
            call_id, incident_id, digits=request.form.get("Digits", ""), now=now
        )
        if outcome == "confirmed":
            _say(
                response,
                "Thank you. An operator will call you in the next few minutes "
                "with what you need to know. Goodbye.",
            )
        else:
            _say(response, "Thank you. We will ask someone else. Goodbye.")
        response.hangup()
        return twiml(response)
    ask = services.cascade_call_answered(
        call_id, incident_id, answered_by=request.form.get("AnsweredBy"), now=now
    )
    if not ask:
        response.hangup()
        return twiml(response)
    gather = Gather(
        num_digits=1,
        input="dtmf",
        timeout=GATHER_TIMEOUT_SECONDS,
        action=url_for(
            "phone.voice_cascade",
            incident=incident_id,
            contact=contact_id,
            call=call_id,
            step="key",
        ),
        method="POST",
    )
    _say(gather, CASCADE_ASK)
    _say(gather, CASCADE_ASK)
    response.append(gather)
    _say(response, "We did not hear a key press. Goodbye.")
    response.hangup()
    return twiml(response)


@bp.post("/twilio/sms")
@twilio_signed
def sms() -> ResponseReturnValue:
    """A text to our number: YES confirms a contact; anything else gets a short reply."""
    reply = services.handle_sms_reply(
        request.form.get("From", ""),
        request.form.get("Body", ""),
        message_sid=request.form.get("MessageSid", ""),
        line_phone=request.form.get("To", ""),
        now=utcnow(),
    )
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return twiml(response)


@bp.post("/twilio/status")
@twilio_signed
def status() -> ResponseReturnValue:
    """Twilio's delivery and call-progress reports."""
    services.record_status_callback(request.form.to_dict(), now=utcnow())
    return Response(status=204)


class RotaForm(FlaskForm):  # type: ignore[misc]
    operator = SelectField(
        "Operator", coerce=int, widget=GovSelect(), validators=[InputRequired("Choose an operator")]
    )
    phone = StringField(
        "Phone number the line should ring",
        description="A UK number, like 07911 123 456",
        widget=GovTextInput(),
        validators=[InputRequired("Enter the phone number the line should ring")],
    )
    on_duty = RadioField(
        "On duty now?",
        choices=[("yes", "Yes, on duty"), ("no", "No, off duty")],
        default="yes",
        widget=GovRadioInput(),
        validators=[InputRequired("Say whether they are on duty")],
    )
    position = RadioField(
        "Which calls should ring them?",
        choices=[
            ("main", "Main operator"),
            ("backup", "Backup, if the main operator does not answer"),
        ],
        default="main",
        widget=GovRadioInput(),
        validators=[InputRequired("Say whether they are the main operator or the backup")],
    )
    submit = SubmitField("Save the rota", widget=GovSubmitInput())


@bp.route("/emergency/rota", methods=["GET", "POST"])
@roles_required(Role.OPERATOR, Role.ADMIN)
def rota() -> ResponseReturnValue:
    """Set who is on duty for the 24-hour line and the number it rings."""
    form = RotaForm()
    form.operator.choices = [(0, "Choose an operator")] + [
        (user.id, user.name) for user in services.operators()
    ]
    if form.validate_on_submit():
        operator = db.session.get(User, form.operator.data) if form.operator.data else None
        if operator is None:
            form.operator.errors = ["Choose an operator"]
        else:
            try:
                services.set_rota_entry(
                    operator,
                    phone_text=form.phone.data or "",
                    on_duty=form.on_duty.data == "yes",
                    is_backup=form.position.data == "backup",
                    by=current_user,
                    now=utcnow(),
                )
            except DomainError as error:
                for name, message in (error.fields or {"phone": str(error)}).items():
                    field = getattr(form, name, form.phone)
                    field.errors = [message]
            else:
                return redirect(flask_url_for("phone.rota"))
    return render_template("emergency/rota.html", form=form, entries=services.rota_entries())


def register(app: Flask) -> None:
    """Add the phone line's pages and webhooks; Twilio cannot send a CSRF token."""
    from app.extensions import csrf
    from app.views import dashboard_link

    app.register_blueprint(bp)
    for role in (Role.OPERATOR, Role.ADMIN):
        dashboard_link(
            role, "phone.rota", "24-hour line rota", "Who is on duty and the number it rings"
        )
    for view in (voice, voice_pin, voice_dial, voice_cascade, sms, status):
        csrf.exempt(view)
