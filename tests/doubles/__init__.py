"""Test doubles for Mull's end-to-end tests: a GitHub (REST, git smart HTTP, webhooks) and a scripted model.

Import from the submodules (``github``, ``model_server``, ``fixtures``); this package stays empty so that
``python -m tests.doubles.model_server`` runs without importing the module twice.
"""
