"""The abuse tests reuse the marketplace's local Stripe server (localstripe) fixtures, so
the card page shows its form without anything leaving the machine."""

from tests.booking.conftest import localstripe, localstripe_url, stripe_config

__all__ = ["localstripe", "localstripe_url", "stripe_config"]
