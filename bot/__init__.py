"""Mull's receiving and deciding half: the webhook receiver, settings, the CLI and the job contract."""
