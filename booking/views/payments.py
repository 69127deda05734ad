"""Pages for card top-ups, worker earnings and bank connection, council payouts and
payment differences, and the Stripe webhook."""

from __future__ import annotations

import contextlib
from typing import Any

import stripe
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_login import current_user

from app.clock import utcnow
from app.errors import DomainError
from app.models import Role
from app.security import CARER_SIDE, public, roles_required
from booking.models.payments import PaymentStatus
from booking.services import payments, payouts, reconciliation
from booking.services.stripe_backend import GatewayError, make_gateway

bp = Blueprint("payments", __name__)


@bp.route("/payments/bookings/<int:booking_id>/card", methods=["GET", "POST"])
@roles_required(*CARER_SIDE)
def card(booking_id: int) -> ResponseReturnValue:
    """Pay the part of a break the budget does not cover, by card (Stripe Elements)."""
    try:
        payment = payments.payment_for_carer(booking_id, user=current_user)
    except DomainError:
        abort(404)
    error: str | None = None
    if request.method == "POST":
        if not payments.card_payments_on(current_app.config):
            error = "Card payments are not available at the moment."
        else:
            try:
                payments.submit_card(
                    payment,
                    payment_method_id=request.form.get("payment_method", "").strip(),
                    actor=current_user,
                    now=utcnow(),
                )
            except DomainError as exc:
                error = exc.message
            else:
                flash("Thank you. We are checking your card with your bank.", "success")
                return redirect(url_for("payments.card", booking_id=booking_id))
    client_secret: str | None = None
    stripe_unreachable = False
    card_on = payments.card_payments_on(current_app.config)
    if card_on and payment.status is PaymentStatus.REQUIRES_ACTION:
        try:
            client_secret = payments.confirmation_secret(
                payment, gateway=make_gateway(current_app.config)
            )
        except (stripe.StripeError, GatewayError):
            stripe_unreachable = True
    return render_template(
        "booking/payments/card.html",
        payment=payment,
        card_payments_on=card_on,
        needs_card=payment.status in payments.NEEDS_CARD,
        client_secret=client_secret,
        stripe_unreachable=stripe_unreachable,
        publishable_key=current_app.config.get("STRIPE_PUBLISHABLE_KEY", ""),
        stripe_js_url=current_app.config.get("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        error=error,
    )


CHECKED = {
    "authorised": ("Thank you. Your bank has confirmed it: the money is reserved.", "success"),
    "failed": ("Your bank did not confirm the payment. Please try another card.", "error"),
    "requires_action": ("Your bank is still waiting for you to confirm the payment.", "error"),
}


@bp.post("/payments/bookings/<int:booking_id>/card/check")
@roles_required(*CARER_SIDE)
def card_check(booking_id: int) -> ResponseReturnValue:
    """After the bank's check (3-D Secure) in the browser, or when the carer asks: read
    the payment's state from Stripe now instead of waiting for the webhook."""
    try:
        payment = payments.payment_for_carer(booking_id, user=current_user)
    except DomainError:
        abort(404)
    try:
        payment = payments.refresh_card_status(
            payment, gateway=make_gateway(current_app.config), actor=current_user, now=utcnow()
        )
    except DomainError as exc:
        flash(exc.message, "error")
    except (stripe.StripeError, GatewayError):
        flash(
            "We could not check with your bank just now. Please try again in a few minutes.",
            "error",
        )
    else:
        message = CHECKED.get(str(payment.status))
        if message is not None:
            flash(*message)
    return redirect(url_for("payments.card", booking_id=booking_id))


@bp.get("/payments/earnings")
@roles_required(Role.WORKER)
def earnings() -> ResponseReturnValue:
    return render_template(
        "booking/payments/earnings.html",
        earnings=payouts.earnings_for(current_user),
        account=payouts.account_for(current_user),
    )


@bp.route("/payments/bank-account", methods=["GET", "POST"])
@roles_required(Role.WORKER)
def bank_account() -> ResponseReturnValue:
    """Connect a bank account through Stripe Connect Express onboarding."""
    error: str | None = None
    if request.method == "POST":
        try:
            link = payouts.start_onboarding(
                current_user,
                gateway=make_gateway(current_app.config),
                refresh_url=url_for("payments.bank_account", _external=True),
                return_url=url_for("payments.bank_account_return", _external=True),
                now=utcnow(),
            )
        except DomainError as exc:
            error = exc.message
        except stripe.StripeError:
            error = "We could not reach our payment provider. Please try again in a few minutes."
        else:
            return redirect(link)
    return render_template(
        "booking/payments/bank_account.html",
        account=payouts.account_for(current_user),
        stripe_on=current_app.config.get("PAYMENT_BACKEND") == "stripe",
        error=error,
    )


@bp.get("/payments/bank-account/done")
@roles_required(Role.WORKER)
def bank_account_return() -> ResponseReturnValue:
    # If Stripe cannot be reached, the account.updated webhook brings the news instead.
    with contextlib.suppress(stripe.StripeError):
        payouts.refresh_account(
            current_user, gateway=make_gateway(current_app.config), now=utcnow()
        )
    return redirect(url_for("payments.bank_account"))


@bp.get("/payments/payouts")
@roles_required(Role.COUNCIL_OFFICER)
def payouts_report() -> ResponseReturnValue:
    rows = payouts.payouts_by_worker_and_month(council_id=current_user.council_id)
    if request.args.get("format") == "csv":
        return Response(
            payouts.payouts_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="payouts.csv"'},
        )
    return render_template("booking/payments/payouts.html", rows=rows)


@bp.get("/payments/differences")
@roles_required(Role.COUNCIL_OFFICER, Role.ADMIN)
def differences() -> ResponseReturnValue:
    council_id = None if current_user.has_role(Role.ADMIN) else current_user.council_id
    return render_template(
        "booking/payments/differences.html",
        differences=reconciliation.open_differences(council_id=council_id),
    )


@bp.post("/payments/differences/<int:difference_id>/resolve")
@roles_required(Role.COUNCIL_OFFICER, Role.ADMIN)
def resolve_difference(difference_id: int) -> ResponseReturnValue:
    """Staff have dealt with a difference: take it off the list (audited)."""
    try:
        row = reconciliation.resolve_difference(
            difference_id,
            actor=current_user,
            note=request.form.get("note"),
            now=utcnow(),
        )
    except DomainError:
        abort(404)
    flash(f"The difference for {row.object_ref} is marked as resolved.", "success")
    return redirect(url_for("payments.differences"))


@bp.post("/stripe/webhook")
@public
def stripe_webhook() -> ResponseReturnValue:
    """Stripe events, verified by signature; a replay changes nothing."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET", "")
    if not secret:
        return {"error": "webhooks are not configured"}, 400
    try:
        event: Any = stripe.Webhook.construct_event(
            request.get_data(), request.headers.get("Stripe-Signature", ""), secret
        )
    except (ValueError, stripe.SignatureVerificationError):
        return {"error": "invalid signature"}, 400
    applied = payments.handle_stripe_event(event, now=utcnow())
    return {"received": True, "replayed": not applied}, 200


def _exempt_webhook_from_csrf(_state: BlueprintSetupState) -> None:
    """Stripe cannot send our CSRF token; its signature protects the webhook instead.
    Runs when the blueprint is registered on an app, not when this module is imported."""
    from app.extensions import csrf

    csrf.exempt(stripe_webhook)


bp.record_once(_exempt_webhook_from_csrf)
