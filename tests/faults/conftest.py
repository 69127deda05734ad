"""The fault tests reuse the marketplace's local Stripe server (localstripe) fixtures."""

from tests.booking.conftest import localstripe, localstripe_url, stripe_config

__all__ = ["localstripe", "localstripe_url", "stripe_config"]
