"""Talking to GitHub as the App: clients, paging, pull requests, reviews, and the outbound redactor."""
