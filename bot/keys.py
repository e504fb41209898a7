"""Redis key names Mull owns (arq's own keys stay arq's). One place, so nothing collides.

Two families. Global keys (workers, heartbeats, delivery dedupe, installations, counters) sit right under
``mull:``. Everything that belongs to one repository sits under ``mull:repo:<repo id>:`` (``repo_prefix``),
so removing a repository deletes its state with one SCAN of ``repo_keys(repo_id)`` and touches no other
repository's keys. Every function here whose first argument is ``repo_id`` builds a key under that prefix.

Keys of the layout before the per-repository prefix are moved by ``worker.ops.key_layout`` at worker startup;
``moved_key`` says where each of them lives now.
"""

from __future__ import annotations

PREFIX = "mull:"

SEEN_TTL_MS = 3 * 24 * 3600 * 1000  # GitHub redelivers for days at most; dedupe that long.
# A short list of tokens, one pushed with each batch of jobs due now: an idle worker waits on it (BLPOP) between
# polls, so new work starts at once instead of at the next poll. Holds nothing but "1"s, at most NEW_WORK_MAX.
NEW_WORK = PREFIX + "new-work"
NEW_WORK_MAX = 8
APP_SLUG = PREFIX + "app:slug"
APP_BOT = PREFIX + "app:bot"  # hash: login, id


def seen(guid: str) -> str:
    """Set once per X-GitHub-Delivery: the receiver's dedupe."""
    return f"{PREFIX}seen:{guid}"


def once(name: str) -> str:
    """Claimed once (SET NX) by a side effect of one delivery that must not repeat when its job reruns;
    ``name`` holds the delivery guid. Per-repository side effects use ``repo_once``."""
    return f"{PREFIX}once:{name}"


# --- per repository: everything under mull:repo:<id>: ------------------------------------------------------


def repo_prefix(repo_id: int) -> str:
    """The prefix of every key that belongs to one repository."""
    return f"{PREFIX}repo:{int(repo_id)}:"


def repo_keys(repo_id: int) -> str:
    """SCAN pattern of one repository's keys: what removing the repository deletes."""
    return repo_prefix(repo_id) + "*"


def staged_delivery(token: str, number: int) -> str:
    """A delivery's job payload, written just before the script that dedupes it renames it into arq's job key
    (or deletes it): unique per request, and it expires within a minute if that script never ran."""
    return f"{PREFIX}staged:{token}:{number}"


STAGED_TTL_MS = 60 * 1000


def issue_state(repo_id: int, issue: int) -> str:
    """Hash per issue: status comment id, revision, last trigger, PR number."""
    return f"{repo_prefix(repo_id)}issue:{issue}"


def solve_result(repo_id: int, issue: int, trigger: str) -> str:
    """An agent run's result (JSON) until its pull request shows it: a rerun after a crash must not lose it."""
    return f"{issue_state(repo_id, issue)}:result:{trigger}"


def run_asked(guid: str) -> str:
    """Set once the delivery ``guid`` queued a run: its handling, retried after a worker died, queues no other."""
    return f"{PREFIX}asked:{guid}"


def kept_run(repo_id: int, issue: int, trigger: str) -> str:
    """An agent run's result and commit for one trigger (``worker.jobs.kept_run``): kept before the push, so a
    rerun of the job resumes instead of running the agent again."""
    return f"{issue_state(repo_id, issue)}:run:{trigger}"


def test_run(repo_id: int, sha: str) -> str:
    """Mull's own run of the repository's ``test:`` command on the commit ``sha`` (JSON, no secret: the output's
    tail is scrubbed): the pull request body, the critique and the release for review read it."""
    return f"{repo_prefix(repo_id)}tests:{sha}"


def issue_spend(repo_id: int, issue: int) -> str:
    """Hash of the model use of one issue and its pull request, every run and critique together: input,
    output, cost_micro, unpriced, runs (as ``installation_spend``)."""
    return f"{repo_prefix(repo_id)}spend:{issue}"


def issue_lock(repo_id: int, issue: int) -> str:
    """A lease (``worker.jobs.lease_lock``) on an issue's status comment and its place in the line."""
    return f"{repo_prefix(repo_id)}lock:issue:{issue}"


def release_lock(repo_id: int) -> str:
    """A lease (``worker.jobs.lease_lock``) on taking a repository's held pull requests out of draft."""
    return f"{repo_prefix(repo_id)}lock:release"


def stop_flag(repo_id: int, job_id: str) -> str:
    """Set by ``/mull stop`` (holding who asked) so a cancelled run pushes its partial work, not reruns."""
    return f"{repo_prefix(repo_id)}stop:{job_id}"


def pull_state(repo_id: int, pr: int) -> str:
    """Hash per Mull PR: fix rounds and CI fix attempts spent, last review event time."""
    return f"{repo_prefix(repo_id)}pr:{pr}"


def base_update(repo_id: int, pr: int) -> str:
    """Hash per held Mull PR (``worker.backlog.freshen``): the base commit it was last brought up to, the head
    that made, that head's re-test, and the base and head its one revision round was given at."""
    return f"{repo_prefix(repo_id)}pr:{pr}:base-update"


def backlog(repo_id: int, part: str) -> str:
    """One repository's backlog (``worker.backlog.store``): ``items`` (hash issue -> record), ``waiting`` (sorted set
    of queued issues by labeled time), ``running`` (agent runs going), ``requests`` (the run each queued issue
    asked for), ``held`` (finished drafts in release order), ``ready`` (issues whose PR awaits review),
    ``meta`` (limits from the repo's config, dashboard issue, change counter), ``done`` (hash issue -> when it
    left: ``worker.lifecycle`` lets only a retry bring it back), ``jobs`` (each queued issue's solve job as
    arq stores it, queued by the same script that starts the run), ``bases`` (hash issue -> the branch its
    runs start from and its pull request targets, when not the default branch: ``worker.github.base_branch``)."""
    return f"{repo_prefix(repo_id)}backlog:{part}"


def snoozed_items(repo_id: int) -> str:
    """Prefix of the repository's snooze records: ``snooze(repo_id, n)`` is this plus ``n``. The backlog's
    start script checks it per queued issue, since a snoozed issue keeps its place but waits."""
    return f"{repo_prefix(repo_id)}snooze:"


def snooze(repo_id: int, number: int) -> str:
    """Hash per snoozed issue or pull request (``worker.backlog.snooze``): wake time, ``until #N``, who snoozed it."""
    return f"{snoozed_items(repo_id)}{number}"


def snooze_waiting_on(repo_id: int, number: int) -> str:
    """Set of the snoozed items that wake when issue ``number`` closes (``/mull snooze until #N``)."""
    return f"{repo_prefix(repo_id)}snooze-until:{number}"


def config_pointer(repo_id: int) -> str:
    """Which blob (SHA, ETag) the repository's ``.github/mull.yml`` had when last checked (worker.repo_config)."""
    return f"{repo_prefix(repo_id)}config"


def repo_once(repo_id: int, name: str) -> str:
    """Claimed once (SET NX) by a side effect about one repository that must not repeat (a notification)."""
    return f"{repo_prefix(repo_id)}once:{name}"


def digest_sent(repo_id: int, login: str, window: str) -> str:
    """Set once per reviewer, repository and digest window: several workers still send one digest."""
    return f"{repo_prefix(repo_id)}digest:{login.lower()}:{window}"


# --- configuration files shared by repositories ------------------------------------------------------------


def owner_config_pointer(owner: str) -> str:
    """Like ``config_pointer``, for the org defaults in ``{owner}/.github``: shared by the owner's repositories."""
    return f"{PREFIX}config:owner:{owner.lower()}"


def config_fresh(pointer: str) -> str:
    """Set for a while after a config file was checked: until it expires, loads make no request."""
    return f"{pointer}:fresh"


def config_generation(pointer: str) -> str:
    """Counter bumped when a push changes the config file: a pointer of an older generation is not trusted."""
    return f"{pointer}:gen"


def config_blob(schema_version: int, sha: str) -> str:
    """What one config file content parses to, by git blob SHA: content-addressed, shared by repositories."""
    return f"{PREFIX}config:blob:v{schema_version}:{sha}"


# --- workers ------------------------------------------------------------------------------------------------


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
KEY_LAYOUT = PREFIX + "key-layout"  # which key layout this Redis holds (worker.ops.key_layout moves older ones)
KEY_LAYOUT_LOCK = PREFIX + "lock:key-layout"  # one worker at a time moves keys to the current layout


def enqueue_call(nonce: str) -> str:
    """Set by one enqueue (``worker.jobs.queue``): its retry after a lost reply knows the job is written."""
    return f"{PREFIX}enqueue:{nonce}"


# --- installations ------------------------------------------------------------------------------------------


def run_slots(installation_id: int) -> str:
    """Sorted set of the agent runs an installation has going (member: job id, score: slot expiry)."""
    return f"{PREFIX}slots:{installation_id}"


INSTALLATIONS = PREFIX + "installations"  # hash: installation id -> {"account", "suspended"}


def installation_repos(installation_id: int) -> str:
    """Set of "<repo id>:<owner/name>" an installation covers, as its webhooks told."""
    return f"{PREFIX}installation:{installation_id}:repos"


def installation_spend(installation_id: int, month: str) -> str:
    """Hash of an installation's model use in one month (``YYYY-MM``, UTC): input, output, cost_micro (US
    micro-dollars of priced tokens), unpriced (tokens of models without a price), runs."""
    return f"{PREFIX}spend:{installation_id}:{month}"


def reviewer_load(installation_id: int, login: str) -> str:
    """Set of "<repo id>:<issue>" whose pull request awaits this reviewer, across one installation's repos."""
    return f"{PREFIX}reviewer:{installation_id}:{login.lower()}"


# --- counters, failures, deliveries -------------------------------------------------------------------------

STATS = PREFIX + "stats"  # hash of counters the workers keep and /metrics exports
FAILURES = PREFIX + "failures"  # list of recent failures (JSON), newest first
RETRYING = PREFIX + "retrying"  # hash: job id -> why it waits for another try (JSON; worker.jobs.failed_work)
DEAD_LETTERS = PREFIX + "dead-letters"  # hash: delivery guid -> dead letter (JSON; worker.webhooks.dead_letters)
DEAD_LETTER_ORDER = PREFIX + "dead-letters:order"  # sorted set: guid by failure time (ms), for the cap and listing
DEAD_LETTERS_DROPPED = PREFIX + "dead-letters:dropped"  # counter: letters dropped, oldest first, at the cap
AWAITING_REVIEW = PREFIX + "awaiting-review"  # set of "owner/repo#pr" out of draft and open


REDELIVER = PREFIX + "redeliver"  # hash: since (epoch s; older deliveries were checked), cursor + ceiling mid-backlog


def redelivered(guid: str) -> str:
    """Hash, with a TTL, of Mull's redeliveries of this X-GitHub-Delivery: tries, last at, given up at."""
    return f"{PREFIX}redelivered:{guid}"


BACKLOG_REPOS = PREFIX + "backlog:repos"  # hash: repo id -> {"installation_id", "repo"} with a backlog
BACKLOG_EPOCH = PREFIX + "backlog:epoch"  # set once; missing at startup means Redis lost the backlog


def session(run_id: str) -> str:
    """A finished run's session page (zlib-compressed JSON, ``bot.session_store``), kept for the retention."""
    return f"{PREFIX}session:{run_id}"


# sorted set: run id -> when its session expires, for sessions kept in MULL_SESSION_BUCKET (which has no TTL)
SESSION_EXPIRY = PREFIX + "session-expiry"


# --- the layout before mull:repo:<id>: ----------------------------------------------------------------------

LAYOUT = 2  # 1: repository keys spread under mull:issue:, mull:backlog:, …; 2: under mull:repo:<id>:
OLD_LAYOUT_KEYS = PREFIX + "*"  # what the one-time move scans; only keys ``moved_key`` knows move


def moved_key(old: str) -> str | None:
    """Where a key of layout 1 lives now; None for a key that keeps its name or is not worth moving.

    Locks and stop flags are not moved: they expire within the hour, and a worker of the new layout never
    reads the old names, so an old one left behind changes nothing.
    """
    if not old.startswith(PREFIX):
        return None
    kind, _, rest = old[len(PREFIX):].partition(":")
    repo, _, tail = rest.partition(":")
    if not repo.isdigit() or not tail:
        if kind == "config" and rest.startswith("repo:"):  # config:repo:<id>[:fresh|:gen]
            repo, _, suffix = rest[len("repo:"):].partition(":")
            if repo.isdigit() and suffix in ("", "fresh", "gen"):
                return config_pointer(int(repo)) + (f":{suffix}" if suffix else "")
        if kind == "once" and rest.startswith("needs-you:"):  # once:needs-you:<id>:<issue>:…
            repo, _, tail = rest[len("needs-you:"):].partition(":")
            if repo.isdigit() and tail:
                return repo_once(int(repo), f"needs-you:{tail}")
        return None
    repo_id = int(repo)
    if kind in ("issue", "pr", "backlog", "snooze", "snooze-until", "digest"):
        return f"{repo_prefix(repo_id)}{kind}:{tail}"
    return None
