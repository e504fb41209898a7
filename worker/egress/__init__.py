"""Allow-listed network for sandboxed commands: Mull's egress proxy, its policy, and one run's session.

Around any sandboxed command: ``async with egress_proxy(for_setup(settings.sandbox_allowed, config.network)) as
egress``, run it with ``egress.confine(spec)``, then read ``egress.blocked()``.
"""

from worker.egress.policy import EgressPolicy, for_agent, for_setup
from worker.egress.session import Egress, egress_proxy, proxy_env

__all__ = ["Egress", "EgressPolicy", "egress_proxy", "for_agent", "for_setup", "proxy_env"]
