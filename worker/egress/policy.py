"""What one run's egress proxy lets through: the operator's hosts, narrowed by the repository, and why it refuses.

The proxy asks two questions of a connection: may this host and port be reached at all (``refusal``), and may
the host's addresses be loopback, private, link-local or multicast (``may_be_private``: only for a host the
operator listed exactly, never through a wildcard or a repository's entry alone). A refusal's words go back
to the command that asked, and from there to the agent: they say which host was refused and who can allow it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.egress_hosts import DEFAULT_PORTS, HostRule, parse_list, uncovered

if TYPE_CHECKING:
    from worker.repo_config import Network

OPERATOR_SETTING = "MULL_SANDBOX_ALLOW_HOSTS"


@dataclass(frozen=True)
class EgressPolicy:
    """``rules``: what this run may reach; ``operator``: what the deployment allows at most; ``closed``: why
    this run gets no network although the operator allows some (e.g. the agent's commands of a repository that
    keeps `network.agent` off), or None."""

    rules: tuple[HostRule, ...]
    operator: tuple[HostRule, ...]
    closed: str | None = None

    @classmethod
    def of(cls, operator: Sequence[str], repository: Sequence[str] | None = None) -> EgressPolicy:
        """The operator's entries narrowed to the repository's (None: the operator's as they are).

        A repository entry outside the operator's list is a config error before a run starts; should one
        reach here anyway, it is dropped, never honoured."""
        granted = parse_list(operator)
        if repository is None:
            return cls(granted, granted)
        wanted = parse_list(repository)
        outside = set(uncovered(granted, wanted))
        return cls(tuple(rule for rule in wanted if rule not in outside), granted)

    def shut(self, reason: str) -> EgressPolicy:
        """This policy refusing everything, saying ``reason``."""
        return EgressPolicy((), self.operator, reason)

    def refusal(self, host: str, port: int) -> str | None:
        """Why ``host:port`` may not be reached, worded for whoever reads the proxy's 403; None when it may."""
        if self.closed is None and any(rule.matches(host, port) for rule in self.rules):
            return None
        entry = _entry(host, port)
        if not any(rule.matches(host, port) for rule in self.operator):
            return (f"it is not in the operator's allow-list: the operator may add `{entry}` to "
                    f"{OPERATOR_SETTING}, and then a repository may list it in `network.allow` of .github/mull.yml")
        if self.closed is not None:
            return self.closed
        return (f"it is not in this repository's `network.allow` (.github/mull.yml): add `{entry}` there "
                f"(the operator allows it)")

    def may_be_private(self, host: str, port: int) -> bool:
        """Whether ``host`` may resolve to a non-public address: the operator listed it exactly, with this port."""
        return any(not rule.wildcard and rule.matches(host, port) for rule in self.operator)


def _entry(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port in DEFAULT_PORTS else f"{shown}:{port}"


def for_setup(allowed: Sequence[str], network: Network) -> EgressPolicy:
    """A repository's setup commands: the operator's hosts (``MULL_SANDBOX_ALLOW_HOSTS``) narrowed by
    ``network.allow``."""
    return EgressPolicy.of(allowed, network.allow)


def for_agent(allowed: Sequence[str], network: Network) -> EgressPolicy:
    """The agent's own commands: as setup's when the repository sets ``network.agent``, else nothing (the
    proxy still runs, so what the agent tried is refused with a reason and reported)."""
    policy = for_setup(allowed, network)
    if network.agent:
        return policy
    return policy.shut("the agent's own commands get no network in this repository; its maintainers can set "
                       "`network.agent: true` in .github/mull.yml to give them the hosts its setup may reach")
