"""The money side: credit packages, Stripe Checkout orders, redemption codes."""
