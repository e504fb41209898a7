"""Who may finish ``/setup``: whoever can read Mull's console, in the browser that started the flow.

A Mull that is not configured yet may already be reachable (a public host, a tunnel). Without a guard the first
visitor to finish the manifest flow decides which GitHub App, and so whose webhook secret and key, Mull runs
with. Two checks close that:

- a one-time setup code, random per start and printed on the console (logged at WARNING), that the setup
  page asks for: only the operator sees it. Compared in constant time.
- the manifest flow's ``state`` is bound to a random cookie set in the browser that was shown the create
  form; GitHub's callback counts only with that cookie, so a state (or a callback link) carried to another
  browser is refused.

A state also remembers what the operator chose (which GitHub, which owner), so the callback trades the code
at the GitHub that issued it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bot.setup_choices import Choice

STATE_TTL = 3600.0  # as long as GitHub's manifest codes live
MAX_STATES = 1000  # /setup is reachable before setup: bound what reloading it can pile up
COOKIE = "mull_setup"


@dataclass(frozen=True)
class _Issued:
    expiry: float
    browser: bytes  # sha256 of the browser's cookie value
    choice: Choice


class StateRefused(Exception):
    """GitHub's callback does not count: ``unknown`` (never issued, used or expired) or ``other browser``."""


def new_code() -> str:
    """A setup code: 96 random bits, short enough to copy from a console line."""
    return secrets.token_urlsafe(12)


def new_browser() -> str:
    return secrets.token_urlsafe(32)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class SetupGuard:
    """The code of this start, and the states issued to browsers (in memory: a restart starts over)."""

    def __init__(self, code: str, clock: Callable[[], float]) -> None:
        self.code = code
        self.clock = clock
        self.states: dict[str, _Issued] = {}

    def code_ok(self, given: str) -> bool:
        return hmac.compare_digest(_digest(given), _digest(self.code))

    def issue_state(self, browser: str, choice: Choice) -> str:
        now = self.clock()
        self.states = {state: issued for state, issued in self.states.items() if issued.expiry > now}
        while len(self.states) >= MAX_STATES:
            del self.states[next(iter(self.states))]
        state = secrets.token_urlsafe(32)
        self.states[state] = _Issued(now + STATE_TTL, _digest(browser), choice)
        return state

    def take_state(self, state: str, browser: str) -> Choice:
        """The choice ``state`` was issued with, when it was issued to ``browser`` and is fresh (it is then used
        up); else StateRefused.

        ``unknown``: never issued, used or expired. ``other browser``: issued, but not to this browser's
        cookie; left in place so the browser it belongs to can still finish.
        """
        issued = self.states.get(state)
        if issued is None or issued.expiry <= self.clock():
            self.states.pop(state, None)
            raise StateRefused("unknown")
        if not hmac.compare_digest(issued.browser, _digest(browser)):
            raise StateRefused("other browser")
        del self.states[state]
        return issued.choice

    @staticmethod
    def cookie(browser: str, secure: bool) -> str:
        """The ``Set-Cookie`` value: sent back on GitHub's redirect (a top-level GET, so ``SameSite=Lax``)."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}={browser}; Max-Age={int(STATE_TTL)}; Path=/setup; HttpOnly; SameSite=Lax{flags}"
