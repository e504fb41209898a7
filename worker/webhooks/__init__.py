"""Webhook routing and the handlers of each event: what happened, and what Mull does about it."""
