"""The payment gateway: a small Protocol with the real Stripe implementation and the
ledger one (house style §7). Picked by config `PAYMENT_BACKEND` in `make_gateway`.

Every call that creates or moves money takes an `idempotency_key` built from our own
record ids (e.g. `payment-12-attempt-1-capture`), so a retry after a timeout replays
Stripe's first answer instead of charging twice.

Errors: `CardRefused` is a decision by the card's bank, or Stripe refusing the card we
sent (not retried; the carer is told); `StripeRejected` is Stripe refusing a request
about an intent that is not in the state we expected (not retried; staff see it);
`StripeObjectMissing` is a 404 for an id we stored. Outages (connection errors,
timeouts, 5xx, 429 rate limits) stay as Stripe's own exceptions and are left to the
outbox, which retries with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import stripe


class GatewayError(Exception):
    """Base class for gateway problems that are not outages."""


class CardRefused(GatewayError):
    """The card was declined or could not be used. `message` is safe to show."""

    def __init__(self, message: str, *, intent_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.intent_id = intent_id


class StripeRejected(GatewayError):
    """Stripe refused the request itself (4xx other than a card decline)."""


class StripeObjectMissing(GatewayError):
    """Stripe has no object with an id we stored (a 404)."""


class PaymentsNotConfigured(GatewayError):
    """The ledger backend has no card payments or Connect accounts."""


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int
    # Money kept after captures and refunds (charge amount − refunded, 0 until captured).
    net_pence: int = 0
    message: str | None = None
    # Only for the carer's browser (Stripe.js `handleNextAction`); never stored or logged.
    client_secret: str | None = None
    # Why Stripe cancelled it: "automatic" when an uncaptured authorisation lapsed.
    cancellation_reason: str | None = None


@dataclass(frozen=True)
class Account:
    id: str
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool


@dataclass(frozen=True)
class Transfer:
    id: str
    amount: int
    destination: str
    reversed: bool = False


class PaymentGateway(Protocol):
    name: str

    def authorise(
        self,
        *,
        amount_pence: int,
        payment_method_id: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Intent: ...
    def capture(self, intent_id: str, *, amount_pence: int, idempotency_key: str) -> Intent: ...
    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent: ...
    def refund(self, intent_id: str, *, amount_pence: int, idempotency_key: str) -> str: ...
    def retrieve_intent(self, intent_id: str) -> Intent: ...
    def create_account(
        self, *, email: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Account: ...
    def retrieve_account(self, account_id: str) -> Account: ...
    def account_link(
        self, account_id: str, *, refresh_url: str, return_url: str, idempotency_key: str
    ) -> str: ...
    def transfer(
        self,
        *,
        amount_pence: int,
        destination: str,
        idempotency_key: str,
        transfer_group: str,
        metadata: dict[str, str],
    ) -> Transfer: ...
    def retrieve_transfer(self, transfer_id: str) -> Transfer: ...


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from a Stripe object (not a dict in stripe 16) or a plain dict."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    try:
        return getattr(obj, name)
    except AttributeError:
        return default


class StripeGateway:
    """Stripe through the official SDK (`stripe` 16, StripeClient)."""

    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str = "",
        timeout_seconds: float = 20,
        max_network_retries: int = 1,
    ) -> None:
        if not secret_key:
            raise PaymentsNotConfigured("STRIPE_SECRET_KEY is not set.")
        bases: dict[str, str] = {}
        if api_base:
            bases = {"api": api_base.rstrip("/"), "connect": api_base.rstrip("/")}
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses=bases,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    @staticmethod
    def _intent(pi: Any) -> Intent:
        charge = _get(pi, "latest_charge")
        net = 0
        if charge is not None and not isinstance(charge, str) and _get(charge, "captured"):
            net = int(_get(charge, "amount", 0)) - int(_get(charge, "amount_refunded", 0) or 0)
        error = _get(pi, "last_payment_error")
        return Intent(
            id=str(_get(pi, "id")),
            status=str(_get(pi, "status")),
            amount=int(_get(pi, "amount", 0)),
            net_pence=net,
            message=_get(error, "message") if error else None,
            client_secret=_get(pi, "client_secret"),
            cancellation_reason=_get(pi, "cancellation_reason"),
        )

    def authorise(
        self,
        *,
        amount_pence: int,
        payment_method_id: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Intent:
        try:
            pi = self.client.v1.payment_intents.create(
                params={
                    "amount": amount_pence,
                    "currency": "gbp",
                    "payment_method": payment_method_id,
                    # Card only: the method is attached here, so no redirect-based method
                    # (and no return_url) can come into play. Still a documented create
                    # parameter; localstripe refuses `automatic_payment_methods`.
                    "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]
                    "capture_method": "manual",
                    "confirm": True,
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            raise CardRefused(
                exc.user_message or "The card was not accepted.",
                intent_id=_get(_get(exc.error, "payment_intent"), "id"),
            ) from exc
        except stripe.InvalidRequestError as exc:
            # Stripe will give the same answer however often we ask (e.g. "No such
            # PaymentMethod"): a refusal of this card, not an outage. Its message is for
            # developers, so the carer gets a plain one.
            raise CardRefused(
                "We could not use that card. Please enter your card details again.",
                intent_id=_get(_get(exc.error, "payment_intent"), "id"),
            ) from exc
        return self._intent(pi)

    def capture(self, intent_id: str, *, amount_pence: int, idempotency_key: str) -> Intent:
        try:
            self.client.v1.payment_intents.capture(
                intent_id,
                params={"amount_to_capture": amount_pence},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as exc:
            # A retry after a timeout whose first attempt did reach Stripe: Stripe replays
            # the first answer for the same key; a server that does not keep keys says
            # "already captured" instead. Either way, read what is there now.
            current = self.retrieve_intent(intent_id)
            if current.status == "succeeded":
                return current
            raise StripeRejected(str(exc)) from exc
        return self.retrieve_intent(intent_id)

    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent:
        try:
            pi = self.client.v1.payment_intents.cancel(
                intent_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            current = self.retrieve_intent(intent_id)
            if current.status in ("canceled", "succeeded"):
                return current
            raise StripeRejected(str(exc)) from exc
        return self._intent(pi)

    def refund(self, intent_id: str, *, amount_pence: int, idempotency_key: str) -> str:
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": intent_id, "amount": amount_pence},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as exc:
            raise StripeRejected(str(exc)) from exc
        return str(_get(refund, "id"))

    def retrieve_intent(self, intent_id: str) -> Intent:
        try:
            pi = self.client.v1.payment_intents.retrieve(
                intent_id, params={"expand": ["latest_charge"]}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise StripeObjectMissing(f"Stripe has no PaymentIntent {intent_id}") from exc
            raise
        return self._intent(pi)

    @staticmethod
    def _account(acct: Any) -> Account:
        return Account(
            id=str(_get(acct, "id")),
            details_submitted=bool(_get(acct, "details_submitted", False)),
            charges_enabled=bool(_get(acct, "charges_enabled", False)),
            payouts_enabled=bool(_get(acct, "payouts_enabled", False)),
        )

    def create_account(
        self, *, email: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Account:
        acct = self.client.v1.accounts.create(
            params={
                "type": "express",
                "country": "GB",
                "email": email,
                "business_type": "individual",
                "capabilities": {"transfers": {"requested": True}},
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
        return self._account(acct)

    def retrieve_account(self, account_id: str) -> Account:
        return self._account(self.client.v1.accounts.retrieve(account_id))

    def account_link(
        self, account_id: str, *, refresh_url: str, return_url: str, idempotency_key: str
    ) -> str:
        link = self.client.v1.account_links.create(
            params={
                "account": account_id,
                "refresh_url": refresh_url,
                "return_url": return_url,
                "type": "account_onboarding",
            },
            options={"idempotency_key": idempotency_key},
        )
        return str(_get(link, "url"))

    @staticmethod
    def _transfer(tr: Any) -> Transfer:
        return Transfer(
            id=str(_get(tr, "id")),
            amount=int(_get(tr, "amount", 0)),
            destination=str(_get(tr, "destination")),
            reversed=bool(_get(tr, "reversed", False)),
        )

    def transfer(
        self,
        *,
        amount_pence: int,
        destination: str,
        idempotency_key: str,
        transfer_group: str,
        metadata: dict[str, str],
    ) -> Transfer:
        tr = self.client.v1.transfers.create(
            params={
                "amount": amount_pence,
                "currency": "gbp",
                "destination": destination,
                "transfer_group": transfer_group,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
        return self._transfer(tr)

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        try:
            return self._transfer(self.client.v1.transfers.retrieve(transfer_id))
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise StripeObjectMissing(f"Stripe has no Transfer {transfer_id}") from exc
            raise


class LedgerGateway:
    """The default: nothing is sent anywhere. Card top-ups are recorded as paid outside
    Stripe (no outbox calls are queued for them), and payouts are recorded as paid by the
    council's own payroll, with a reference built from our ids."""

    name = "ledger"

    def _refuse(self) -> Any:
        raise PaymentsNotConfigured(
            "Card payments and bank connections are not switched on for this service."
        )

    def authorise(self, **_: Any) -> Intent:
        return self._refuse()  # type: ignore[no-any-return]

    def capture(self, intent_id: str, **_: Any) -> Intent:
        return self._refuse()  # type: ignore[no-any-return]

    def cancel(self, intent_id: str, **_: Any) -> Intent:
        return self._refuse()  # type: ignore[no-any-return]

    def refund(self, intent_id: str, **_: Any) -> str:
        return self._refuse()  # type: ignore[no-any-return]

    def retrieve_intent(self, intent_id: str) -> Intent:
        return self._refuse()  # type: ignore[no-any-return]

    def create_account(self, **_: Any) -> Account:
        return self._refuse()  # type: ignore[no-any-return]

    def retrieve_account(self, account_id: str) -> Account:
        return self._refuse()  # type: ignore[no-any-return]

    def account_link(self, account_id: str, **_: Any) -> str:
        return self._refuse()  # type: ignore[no-any-return]

    def transfer(
        self,
        *,
        amount_pence: int,
        destination: str,
        idempotency_key: str,
        transfer_group: str,
        metadata: dict[str, str],
    ) -> Transfer:
        return Transfer(
            id=f"ledger:{idempotency_key}", amount=amount_pence, destination=destination
        )

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        return self._refuse()  # type: ignore[no-any-return]


def make_gateway(config: dict[str, Any] | Any) -> PaymentGateway:
    """The gateway for `PAYMENT_BACKEND` (callers pass the app config mapping)."""
    backend = config.get("PAYMENT_BACKEND", "ledger")
    if backend == "stripe":
        return StripeGateway(
            config.get("STRIPE_SECRET_KEY", ""),
            api_base=config.get("STRIPE_API_BASE", ""),
            timeout_seconds=float(config.get("STRIPE_TIMEOUT_SECONDS", 20)),
            max_network_retries=int(config.get("STRIPE_MAX_NETWORK_RETRIES", 1)),
        )
    if backend == "ledger":
        return LedgerGateway()
    raise ValueError(f"unknown PAYMENT_BACKEND {backend!r}")
