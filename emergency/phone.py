"""The 24-hour phone line as Twilio webhooks (TwiML out), and the operators' rota page.

Every webhook is checked with `twilio_signed` (403 unless Twilio signed it) and answers
from the database alone: calls and SMS go out later through the outbox. Nothing is
spoken to a caller beyond "your plan has been found".
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
)
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
# A caller whose plan was found: the incident is open for the operators, with the
# caller's number on its timeline, and the cascade has started.
NOBODY_ANSWERED = (
    "We could not reach an operator just now. We are contacting the people named "
    "in the plan. An operator will call you back on this number as soon as they can. "
    "If someone is in danger, hang up and dial 999."
)
# A caller whose plan was not found: nobody can be contacted for them, so no callback
# is promised. The call goes on the operators' missed-calls list.
UNIDENTIFIED_NOBODY_ANSWERED = (
    "Sorry, no operator could take your call just now, and we could not find the plan. "
    "If someone is in danger, hang up and dial 999. "
    "Your call has been noted for the operators."
)
CALL_DUTY_TEAM = "For help now, please call the council's emergency duty team on {number}. "
CALL_DUTY_TEAM_AGAIN = "That number again: {number}."
CALL_AGAIN_LATER = "Otherwise, please call this line again in a few minutes."
CASCADE_ASK = (
    "Hello. This is the carers' emergency line. You are named as an emergency contact "
    "for a carer who needs help now. If you can step in, press 1. "
    "If you cannot, press 2, and we will ask the next person straight away."
)
CASCADE_ASK_AGAIN = (
    "Sorry, we did not understand that key. If you can step in, press 1. If you cannot, press 2."
)
CASCADE_CONFIRMED = (
    "Thank you. An operator will call you in the next few minutes "
    "with what you need to know. Goodbye."
)
CASCADE_DECLINED = "Thank you. We will ask someone else now. Goodbye."
CASCADE_UNCLEAR = "Sorry, we did not understand. We will try you again shortly. Goodbye."
CASCADE_NO_KEY = "We did not hear a key press. Goodbye."
# Said to the operator's phone before the caller is put through: a voicemail greeting
# never presses 1, so it is never mistaken for an operator.
SCREEN_ASK = "This is the carers' emergency line with a caller waiting. Press 1 to take the call."
SCREEN_CONNECTING = "Putting you through."


def url_for(endpoint: str, **values: Any) -> str:
    """A relative URL: Twilio resolves it against the URL it requested (PUBLIC_BASE_URL)."""
    return flask_url_for(endpoint, **values)


def _say(target: TwiML, text: str) -> None:
    target.say(text, voice=VOICE, language=LANGUAGE)


def twiml(response: TwiML) -> Response:
    return Response(str(response), mimetype="text/xml")


MAX_ID = 2**31 - 1  # the largest id an integer column holds


def _int_arg(name: str, default: int | None = None) -> int | None:
    """A small whole number from the query string, else `default` (never a 500 on a
    huge or odd value: ids are integer columns)."""
    value = request.args.get(name, "")
    if value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_ID:
        return int(value)
    return default


def _form_int(name: str) -> int | None:
    value = request.form.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 7 else None


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


def _dial(response: VoiceResponse, number: str, *, stage: int, incident_id: int | None) -> None:
    """Ring an operator's number. When it picks up, the whisper (`voice_screen`) asks
    for 1 before the caller is put through; the caller hears ringing meanwhile. How the
    transfer ended goes to `voice_dial`."""
    values: dict[str, Any] = {"stage": stage}
    if incident_id is not None:
        values["incident"] = incident_id
    screen: dict[str, Any] = dict(values)
    call_sid = request.form.get("CallSid", "")
    if call_sid:
        screen["parent"] = call_sid[:64]
    dial = response.dial(
        timeout=DIAL_TIMEOUT_SECONDS,
        action=url_for("phone.voice_dial", **values),
        method="POST",
        answer_on_bridge=True,
    )
    dial.number(number, url=url_for("phone.voice_screen", **screen), method="POST")


def _dial_operator(
    response: VoiceResponse, numbers: services.DutyNumbers, *, incident_id: int | None
) -> bool:
    """Ring the on-duty operator; the dial action handles no answer. False if nobody's on."""
    if numbers.primary is None:
        return False
    _dial(response, numbers.primary, stage=1, incident_id=incident_id)
    return True


def _spoken_number(e164: str) -> str:
    """A UK number as a person says it, digit by digit in its usual groups."""
    try:
        national = phonenumbers.format_number(
            phonenumbers.parse(e164, "GB"), phonenumbers.PhoneNumberFormat.NATIONAL
        )
    except phonenumbers.NumberParseException:
        national = e164
    return ", ".join(" ".join(group) for group in national.split() if group)


def _nobody_for_unidentified(response: VoiceResponse, *, reason: str) -> None:
    """No operator took a call whose plan was not found: put it on the operators'
    missed-calls list and tell the caller, truthfully, what to do now."""
    line = request.form.get("To")
    services.record_missed_call(
        request.form.get("CallSid", ""),
        caller_number=request.form.get("From"),
        line_number=line,
        reason=reason,
        now=utcnow(),
    )
    _say(response, UNIDENTIFIED_NOBODY_ANSWERED)
    duty = services.council_duty_phone(services.council_for_line(line))
    if duty and duty != line:
        spoken = _spoken_number(duty)
        _say(
            response,
            CALL_DUTY_TEAM.format(number=spoken) + CALL_DUTY_TEAM_AGAIN.format(number=spoken),
        )
    else:
        _say(response, CALL_AGAIN_LATER)
    response.hangup()


def _to_operator_unidentified(response: VoiceResponse) -> None:
    """No plan found (silence, three wrong PINs, or refused): ring the operator."""
    numbers = services.duty_numbers(services.council_for_line(request.form.get("To")))
    if numbers.primary is None:
        _nobody_for_unidentified(response, reason="nobody on duty")
        return
    _say(response, TO_OPERATOR)
    _dial_operator(response, numbers, incident_id=None)


@bp.post("/twilio/voice")
@twilio_signed
def voice() -> ResponseReturnValue:
    """A call to the line: greet, gather the PIN; after three silences, an operator."""
    attempt = _int_arg("attempt", 1) or 1
    services.note_call_arrived(request.form.get("CallSid", ""), now=utcnow())
    response = VoiceResponse()
    if attempt > MAX_PIN_TRIES:
        _to_operator_unidentified(response)
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
                caller_number=request.form.get("From"),
            )
            _say(response, NOBODY_ANSWERED)
            response.hangup()
        return twiml(response)
    if result.outcome is PinOutcome.REFUSED or attempt >= MAX_PIN_TRIES:
        _to_operator_unidentified(response)
        return twiml(response)
    _gather_pin(response, attempt + 1, RETRY_MISTYPED)
    return twiml(response)


@bp.post("/twilio/voice/screen")
@twilio_signed
def voice_screen() -> ResponseReturnValue:
    """The whisper to the operator's phone before the caller is put through: press 1 to
    take the call. No key (a voicemail, or nobody) hangs up the operator's leg, so the
    transfer is not answered and the caller goes on to the fallback and the cascade."""
    stage = _int_arg("stage", 1) or 1
    values: dict[str, Any] = {"stage": stage}
    incident_id = _int_arg("incident")
    if incident_id is not None:
        values["incident"] = incident_id
    parent = (request.args.get("parent") or request.form.get("ParentCallSid") or "")[:64]
    response = VoiceResponse()
    if request.args.get("step") == "key":
        if services.record_screen_answer(
            parent, stage=stage, digits=request.form.get("Digits", ""), now=utcnow()
        ):
            _say(response, SCREEN_CONNECTING)  # then the call is bridged
            return twiml(response)
        response.hangup()
        return twiml(response)
    if parent:
        values["parent"] = parent
    gather = Gather(
        num_digits=1,
        input="dtmf",
        timeout=GATHER_TIMEOUT_SECONDS,
        action=url_for("phone.voice_screen", step="key", **values),
        method="POST",
    )
    _say(gather, SCREEN_ASK)
    _say(gather, SCREEN_ASK)
    response.append(gather)
    response.hangup()
    return twiml(response)


@bp.post("/twilio/voice/dial")
@twilio_signed
def voice_dial() -> ResponseReturnValue:
    """How the transfer ended. Not taken: start the cascade at once, try the fallback."""
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
        caller_number=request.form.get("From"),
    )
    response = VoiceResponse()
    if answered:
        response.hangup()
        return twiml(response)
    incident = db.session.get(services.Incident, incident_id) if incident_id is not None else None
    if incident is not None:
        council_id: int | None = incident.council_id
    else:
        council_id = services.council_for_line(request.form.get("To"))
    numbers = services.duty_numbers(council_id)
    if stage == 1 and numbers.fallback:
        _say(response, "Trying another operator. Please stay on the line.")
        _dial(response, numbers.fallback, stage=2, incident_id=incident_id)
        return twiml(response)
    if incident is None:
        _nobody_for_unidentified(response, reason="no operator answered")
        return twiml(response)
    _say(response, NOBODY_ANSWERED)
    response.hangup()
    return twiml(response)


@bp.post("/twilio/voice/cascade")
@twilio_signed
def voice_cascade() -> ResponseReturnValue:
    """The automated cascade call: 1 confirms, 2 moves on at once; machines never count."""
    incident_id = _int_arg("incident")
    call_id = _int_arg("call")
    contact_id = _int_arg("contact")
    now = utcnow()
    response = VoiceResponse()
    values = {"incident": incident_id, "contact": contact_id, "call": call_id}
    if request.args.get("step") == "key":
        digits = request.form.get("Digits", "")
        if digits not in ("1", "2") and request.args.get("again") != "1":
            # A slip of the finger: ask once more before counting anything.
            _gather_key(response, values, again=True)
            return twiml(response)
        outcome = services.cascade_call_keypress(call_id, incident_id, digits=digits, now=now)
        _say(
            response,
            {"confirmed": CASCADE_CONFIRMED, "declined": CASCADE_DECLINED}.get(
                outcome, CASCADE_UNCLEAR
            ),
        )
        response.hangup()
        return twiml(response)
    ask = services.cascade_call_answered(
        call_id, incident_id, answered_by=request.form.get("AnsweredBy"), now=now
    )
    if not ask:
        response.hangup()
        return twiml(response)
    _gather_key(response, values, again=False)
    return twiml(response)


def _gather_key(response: VoiceResponse, values: dict[str, Any], *, again: bool) -> None:
    extra = {"again": 1} if again else {}
    gather = Gather(
        num_digits=1,
        input="dtmf",
        timeout=GATHER_TIMEOUT_SECONDS,
        action=url_for("phone.voice_cascade", step="key", **values, **extra),
        method="POST",
    )
    _say(gather, CASCADE_ASK_AGAIN if again else CASCADE_ASK)
    _say(gather, CASCADE_ASK_AGAIN if again else CASCADE_ASK)
    response.append(gather)
    _say(response, CASCADE_NO_KEY)
    response.hangup()


@bp.post("/twilio/sms")
@twilio_signed
def sms() -> ResponseReturnValue:
    """A text to our number: YES confirms a contact, NO moves the cascade on; anything
    else is recorded and gets a short reply."""
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
    """Twilio's delivery and call-progress reports (our URL names the outbox row)."""
    services.record_status_callback(
        request.form.to_dict(), now=utcnow(), outbox_id=_int_arg("outbox")
    )
    return Response(status=204)


class RotaForm(FlaskForm):  # type: ignore[misc]
    # Any id is accepted here; the service says whether it is one of the council's
    # operators (another council's person is a 404, not a form error that names them).
    operator = SelectField(
        "Operator",
        coerce=int,
        validate_choice=False,
        widget=GovSelect(),
        validators=[InputRequired("Choose an operator")],
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
    """Set who is on duty for the council's 24-hour line and the number it rings."""
    council_id = current_user.council_id
    form = RotaForm()
    form.operator.choices = [(0, "Choose an operator")] + [
        (user.id, user.name) for user in services.operators(council_id)
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
                if error.status == 404:
                    abort(404)
                for name, message in (error.fields or {"phone": str(error)}).items():
                    field = getattr(form, name, form.phone)
                    field.errors = [message]
            else:
                return redirect(flask_url_for("phone.rota"))
    return render_template(
        "emergency/rota.html",
        form=form,
        entries=services.rota_entries(council_id),
        missed=len(services.missed_calls(council_id)),
    )


@bp.get("/emergency/missed-calls")
@roles_required(Role.OPERATOR, Role.ADMIN)
def missed_calls() -> ResponseReturnValue:
    """Callers whose plan was not found and whom no operator answered: call them back."""
    council_id = current_user.council_id
    return render_template(
        "emergency/missed_calls.html",
        calls=services.missed_calls(council_id),
        duty_phone=services.council_duty_phone(council_id),
    )


@bp.post("/emergency/missed-calls/<int:missed_call_id>/done")
@roles_required(Role.OPERATOR, Role.ADMIN)
def missed_call_done(missed_call_id: int) -> ResponseReturnValue:
    """An operator has dealt with a missed call (called back, or could not)."""
    try:
        services.mark_missed_call_dealt_with(missed_call_id, by=current_user, now=utcnow())
    except DomainError:
        abort(404)
    flash("The call has been marked as dealt with.", "success")
    return redirect(flask_url_for("phone.missed_calls"))


def register(app: Flask) -> None:
    """Add the phone line's pages and webhooks; Twilio cannot send a CSRF token."""
    from app.extensions import csrf
    from app.views import dashboard_link

    app.register_blueprint(bp)
    for role in (Role.OPERATOR, Role.ADMIN):
        dashboard_link(
            role, "phone.rota", "24-hour line rota", "Who is on duty and the number it rings"
        )
        dashboard_link(
            role,
            "phone.missed_calls",
            "Missed calls to the line",
            "Callers no operator answered and whose plan was not found: call them back",
        )
    for view in (voice, voice_pin, voice_screen, voice_dial, voice_cascade, sms, status):
        csrf.exempt(view)
