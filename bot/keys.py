"""Redis key names Mull owns (arq's own keys stay arq's). One place, so nothing collides."""

from __future__ import annotations

PREFIX = "mull:"

SEEN_TTL_MS = 3 * 24 * 3600 * 1000  # GitHub redelivers for days at most; dedupe that long.
APP_SLUG = PREFIX + "app:slug"
APP_BOT = PREFIX + "app:bot"  # hash: login, id


def seen(guid: str) -> str:
    """Set once per X-GitHub-Delivery: the receiver's dedupe."""
    return f"{PREFIX}seen:{guid}"


def issue_state(repo_id: int, issue: int) -> str:
    """Hash per issue: status comment id, revision, last trigger, PR number."""
    return f"{PREFIX}issue:{repo_id}:{issue}"


def issue_lock(repo_id: int, issue: int) -> str:
    return f"{PREFIX}lock:issue:{repo_id}:{issue}"


def mirror_lock(repo_id: int) -> str:
    return f"{PREFIX}lock:mirror:{repo_id}"


def worker_heartbeat(worker_id: str) -> str:
    """Expires when a worker stops beating: its running jobs are then orphans."""
    return f"{PREFIX}worker:{worker_id}:alive"


def worker_jobs(worker_id: str) -> str:
    """Set of job ids a worker is running now."""
    return f"{PREFIX}worker:{worker_id}:jobs"


def worker_suspect(worker_id: str) -> str:
    """When a reclaim first found the worker's heartbeat missing (ms, Redis time); every beat deletes it."""
    return f"{PREFIX}worker:{worker_id}:suspect"


WORKERS = PREFIX + "workers"  # set of worker ids that registered


def stop_flag(job_id: str) -> str:
    """Set by ``/mull stop`` (holding who asked) so a cancelled run pushes its partial work, not reruns."""
    return f"{PREFIX}stop:{job_id}"


def pull_state(repo_id: int, pr: int) -> str:
    """Hash per Mull PR: fix rounds and CI fix attempts spent, last review event time."""
    return f"{PREFIX}pr:{repo_id}:{pr}"


def run_slots(installation_id: int) -> str:
    """Sorted set of the agent runs an installation has going (member: job id, score: slot expiry)."""
    return f"{PREFIX}slots:{installation_id}"


INSTALLATIONS = PREFIX + "installations"  # hash: installation id -> {"account", "suspended"}


def installation_repos(installation_id: int) -> str:
    """Set of "<repo id>:<owner/name>" an installation covers, as its webhooks told."""
    return f"{PREFIX}installation:{installation_id}:repos"


STATS = PREFIX + "stats"  # hash of counters the workers keep and /metrics exports
FAILURES = PREFIX + "failures"  # list of recent failures (JSON), newest first
RETRYING = PREFIX + "retrying"  # hash: job id -> why it waits for another try (JSON; worker.failed_work)
DEAD_LETTERS = PREFIX + "dead-letters"  # hash: delivery guid -> dead letter (JSON, body included; worker.dead_letters)
DEAD_LETTER_ORDER = PREFIX + "dead-letters:order"  # sorted set: guid by failure time (ms), for the cap and listing
DEAD_LETTERS_DROPPED = PREFIX + "dead-letters:dropped"  # counter: letters dropped, oldest first, at the cap
AWAITING_REVIEW = PREFIX + "awaiting-review"  # set of "owner/repo#pr" out of draft and open


REDELIVER = PREFIX + "redeliver"  # hash: since (epoch s; older deliveries were checked), cursor + ceiling mid-backlog


def redelivered(guid: str) -> str:
    """Set, with a TTL, once Mull asked GitHub to redeliver this X-GitHub-Delivery: one retry per guid."""
    return f"{PREFIX}redelivered:{guid}"


def backlog(repo_id: int, part: str) -> str:
    """One repository's backlog (``worker.backlog``): ``items`` (hash issue -> record), ``waiting`` (sorted set
    of queued issues by labeled time), ``running`` (agent runs going), ``requests`` (the run each queued issue
    asked for), ``held`` (finished drafts in release order), ``ready`` (issues whose PR awaits review),
    ``meta`` (limits from the repo's config, dashboard issue, change counter)."""
    return f"{PREFIX}backlog:{repo_id}:{part}"


BACKLOG_REPOS = PREFIX + "backlog:repos"  # hash: repo id -> {"installation_id", "repo"} with a backlog
BACKLOG_EPOCH = PREFIX + "backlog:epoch"  # set once; missing at startup means Redis lost the backlog


def reviewer_load(installation_id: int, login: str) -> str:
    """Set of "<repo id>:<issue>" whose pull request awaits this reviewer, across one installation's repos."""
    return f"{PREFIX}reviewer:{installation_id}:{login.lower()}"


def digest_sent(repo_id: int, login: str, window: str) -> str:
    """Set once per reviewer, repository and digest window: several workers still send one digest."""
    return f"{PREFIX}digest:{repo_id}:{login.lower()}:{window}"
