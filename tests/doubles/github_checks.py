"""CI checks in the GitHub double: check suites and runs per head sha, their JSON, routes and webhooks.

Tests play CI (GitHub Actions by default) with GitHubDouble.start_check/complete_check. A suite groups one
app's runs on a sha; when its last pending run completes it completes too, with the runs' highest-priority
conclusion, and ``check_suite.completed`` follows ``check_run.completed``. GitHub sends these to every App
with checks permission, not only the suite's own app. ``pull_requests`` lists the open PRs whose head
branch is the suite's ``head_branch``.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import bare_repo
from .github_diff import commit_info
from .github_http import ApiError, double_of, paginate, require_repo
from .github_json import app_json, hook_payload, repo_json, user_json
from .github_records import CONCLUSION_PRIORITY, Annotation, CheckRun, CheckSuite, suite_conclusion
from .github_state import Repo, State, User, iso, now

Events = list[tuple[str, dict]]
KNOWN_APPS = {"github-actions": (15368, "GitHub Actions", "github")}


def check_app_json(state: State, slug: str) -> dict:
    if slug == state.app.slug:
        return app_json(state)
    app_id, name, owner = KNOWN_APPS.get(slug, (100000 + zlib.crc32(slug.encode()) % 100000, slug, slug))
    stamp = iso(now())
    return {"id": app_id, "slug": slug, "node_id": f"A_{app_id}", "name": name, "description": "",
            "owner": user_json(state, state.user(owner, type="Organization")), "external_url": state.base_url,
            "html_url": f"{state.base_url}/apps/{slug}", "created_at": stamp, "updated_at": stamp,
            "permissions": {"checks": "write", "contents": "read", "metadata": "read"},
            "events": ["check_run", "check_suite", "pull_request", "push"]}


def _pr_refs(state: State, repo: Repo, branch: str | None) -> list[dict]:
    api = f"{state.base_url}/repos/{repo.full_name}"
    repo_ref = {"id": repo.id, "url": api, "name": repo.name}
    return [{"url": f"{api}/pulls/{p.number}", "id": p.id, "number": p.number,
             "head": {"ref": p.head_ref, "sha": bare_repo.rev_parse(repo.path, f"refs/heads/{p.head_ref}")
                      or p.head_sha, "repo": repo_ref},
             "base": {"ref": p.base_ref, "sha": bare_repo.rev_parse(repo.path, f"refs/heads/{p.base_ref}"),
                      "repo": repo_ref}}
            for p in sorted(repo.pulls.values(), key=lambda p: p.number)
            if branch and p.head_ref == branch and repo.issues[p.number].state == "open"]


def check_suite_json(state: State, repo: Repo, suite: CheckSuite, *, webhook: bool = False) -> dict:
    api = f"{state.base_url}/repos/{repo.full_name}"
    commit = commit_info(repo.path, suite.head_sha)
    author = {"name": commit["author_name"], "email": commit["author_email"]}
    committer = {"name": commit["committer_name"], "email": commit["committer_email"]}
    data = {"id": suite.id, "node_id": f"CS_{suite.id}", "head_branch": suite.head_branch,
            "head_sha": suite.head_sha, "status": suite.status, "conclusion": suite.conclusion,
            "url": f"{api}/check-suites/{suite.id}", "before": suite.before, "after": suite.head_sha,
            "pull_requests": _pr_refs(state, repo, suite.head_branch), "app": check_app_json(state, suite.app_slug),
            "created_at": iso(suite.created_at), "updated_at": iso(suite.updated_at),
            "head_commit": {"id": commit["sha"], "tree_id": commit["tree"], "message": commit["message"],
                            "timestamp": commit["date"], "author": author, "committer": committer},
            "latest_check_runs_count": sum(r.suite_id == suite.id for r in repo.check_runs.values()),
            "check_runs_url": f"{api}/check-suites/{suite.id}/check-runs", "rerequestable": True,
            "runs_rerequestable": True}
    if not webhook:
        data["repository"] = repo_json(state, repo)
    return data


def check_run_json(state: State, repo: Repo, run: CheckRun, *, webhook: bool = False) -> dict:
    api = f"{state.base_url}/repos/{repo.full_name}"
    suite = repo.check_suites[run.suite_id]
    html = f"{state.base_url}/{repo.full_name}/runs/{run.id}"
    output = {"title": run.title, "summary": run.summary, "text": run.text,
              "annotations_count": len(run.annotations), "annotations_url": f"{api}/check-runs/{run.id}/annotations"}
    suite_data = check_suite_json(state, repo, suite, webhook=True) if webhook else {"id": suite.id}
    return {"id": run.id, "head_sha": run.head_sha, "node_id": f"CR_{run.id}", "external_id": run.external_id,
            "url": f"{api}/check-runs/{run.id}", "html_url": html, "details_url": run.details_url or html,
            "status": run.status, "conclusion": run.conclusion, "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at), "output": output, "name": run.name, "check_suite": suite_data,
            "app": check_app_json(state, suite.app_slug), "pull_requests": _pr_refs(state, repo, suite.head_branch)}


def annotation_json(state: State, repo: Repo, run: CheckRun, note: Annotation) -> dict:
    blob = f"{state.base_url}/{repo.full_name}/blob/{run.head_sha}/{note.path}"
    return {"path": note.path, "blob_href": blob, "start_line": note.start_line, "end_line": note.end_line,
            "start_column": note.start_column, "end_column": note.end_column,
            "annotation_level": note.annotation_level, "title": note.title, "message": note.message,
            "raw_details": note.raw_details}


def _head_branch(repo: Repo, sha: str) -> str | None:
    """The branch a sha was pushed to: an open PR's head first, else any branch at that sha."""
    for pull in sorted(repo.pulls.values(), key=lambda p: -p.number):
        if repo.issues[pull.number].state == "open" and bare_repo.rev_parse(
                repo.path, f"refs/heads/{pull.head_ref}") == sha:
            return pull.head_ref
    tips = {ref.removeprefix("refs/heads/"): obj for ref, obj in bare_repo.refs(repo.path).items()
            if ref.startswith("refs/heads/")}
    return next((branch for branch, tip in sorted(tips.items()) if tip == sha), None)


def _suite(state: State, repo: Repo, sha: str, app_slug: str, branch: str | None) -> CheckSuite:
    for suite in repo.check_suites.values():
        if suite.head_sha == sha and suite.app_slug == app_slug:
            return suite
    before = bare_repo.rev_parse(repo.path, f"{sha}~1")
    suite = CheckSuite(state.next_id(), sha, branch or _head_branch(repo, sha), app_slug, before)
    repo.check_suites[suite.id] = suite
    return suite


def resolve_sha(repo: Repo, ref: str) -> str:
    sha = bare_repo.rev_parse(repo.path, ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    return sha


def start_check(state: State, repo: Repo, ref: str, name: str, sender: User, app_slug: str = "github-actions",
                branch: str | None = None) -> tuple[CheckRun, Events]:
    """An in-progress run (``check_run.created``); its suite stays pending until every run completes."""
    with state.lock:
        sha = resolve_sha(repo, ref)
        suite = _suite(state, repo, sha, app_slug, branch)
        run = CheckRun(state.next_id(), suite.id, name, sha, external_id=str(state.next_id()))
        repo.check_runs[run.id] = run
        suite.status, suite.conclusion, suite.updated_at = "in_progress", None, now()
        return run, [("check_run", hook_payload(state, repo, "created", sender,
                                                check_run=check_run_json(state, repo, run, webhook=True)))]


def complete_check(state: State, repo: Repo, ref: str, name: str, conclusion: str, sender: User, *,
                   title: str | None = None, summary: str | None = None, text: str | None = None,
                   annotations: list[Annotation] | None = None, app_slug: str = "github-actions",
                   branch: str | None = None, details_url: str | None = None) -> tuple[CheckRun, Events]:
    """Complete the pending run named ``name`` on the sha (or a new one): ``check_run.completed``, then
    ``check_suite.completed`` once the suite has no pending run left."""
    if conclusion not in CONCLUSION_PRIORITY:
        raise ValueError(f"conclusion must be one of {CONCLUSION_PRIORITY}")
    with state.lock:
        sha = resolve_sha(repo, ref)
        suite = _suite(state, repo, sha, app_slug, branch)
        runs = [r for r in repo.check_runs.values() if r.suite_id == suite.id]
        run = next((r for r in runs if r.name == name and r.status != "completed"), None)
        if run is None:
            run = CheckRun(state.next_id(), suite.id, name, sha, external_id=str(state.next_id()))
            repo.check_runs[run.id] = run
            runs.append(run)
        run.status, run.conclusion, run.completed_at = "completed", conclusion, now()
        run.title, run.summary, run.text, run.details_url = title, summary, text, details_url
        run.annotations = list(annotations or [])
        events: Events = [("check_run", hook_payload(state, repo, "completed", sender,
                                                     check_run=check_run_json(state, repo, run, webhook=True)))]
        if all(r.status == "completed" for r in runs):
            suite.status, suite.updated_at = "completed", now()
            suite.conclusion = suite_conclusion([r.conclusion for r in runs])
            events.append(("check_suite", hook_payload(state, repo, "completed", sender,
                                                       check_suite=check_suite_json(state, repo, suite, webhook=True))))
        return run, events


def _runs_page(request: Request, repo: Repo, runs: list[CheckRun]) -> JSONResponse:
    state = double_of(request).state
    query = request.query_params
    if query.get("check_name"):
        runs = [r for r in runs if r.name == query["check_name"]]
    if query.get("status"):
        runs = [r for r in runs if r.status == query["status"]]
    if query.get("filter", "latest") == "latest":
        runs = [r for r in runs if r.id == max(o.id for o in runs if o.name == r.name)]
    runs = sorted(runs, key=lambda r: -r.id)
    page, headers = paginate(request, runs)
    return JSONResponse({"total_count": len(runs), "check_runs": [check_run_json(state, repo, r) for r in page]},
                        headers=headers)


async def runs_for_ref(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    sha = resolve_sha(repo, request.path_params["ref"])
    return _runs_page(request, repo, [r for r in repo.check_runs.values() if r.head_sha == sha])


async def suites_for_ref(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    state = double_of(request).state
    sha = resolve_sha(repo, request.path_params["ref"])
    suites = sorted((s for s in repo.check_suites.values() if s.head_sha == sha), key=lambda s: s.id)
    if name := request.query_params.get("check_name"):
        suites = [s for s in suites if any(r.suite_id == s.id and r.name == name for r in repo.check_runs.values())]
    page, headers = paginate(request, suites)
    return JSONResponse({"total_count": len(suites),
                         "check_suites": [check_suite_json(state, repo, s) for s in page]}, headers=headers)


def _run(request: Request) -> tuple[Repo, CheckRun]:
    repo, _ = require_repo(request)
    run = repo.check_runs.get(request.path_params["run_id"])
    if run is None:
        raise ApiError(404, "Not Found")
    return repo, run


async def get_run(request: Request) -> JSONResponse:
    repo, run = _run(request)
    return JSONResponse(check_run_json(double_of(request).state, repo, run))


async def run_annotations(request: Request) -> JSONResponse:
    repo, run = _run(request)
    state = double_of(request).state
    page, headers = paginate(request, run.annotations)
    return JSONResponse([annotation_json(state, repo, run, a) for a in page], headers=headers)


async def get_suite(request: Request) -> JSONResponse:
    repo, _ = require_repo(request)
    suite = repo.check_suites.get(request.path_params["suite_id"])
    if suite is None:
        raise ApiError(404, "Not Found")
    if request.url.path.endswith("/check-runs"):
        return _runs_page(request, repo, [r for r in repo.check_runs.values() if r.suite_id == suite.id])
    return JSONResponse(check_suite_json(double_of(request).state, repo, suite))


R = "/repos/{owner}/{repo}"
routes = [
    Route(R + "/commits/{ref:path}/check-runs", runs_for_ref),
    Route(R + "/commits/{ref:path}/check-suites", suites_for_ref),
    Route(R + "/check-runs/{run_id:int}", get_run),
    Route(R + "/check-runs/{run_id:int}/annotations", run_annotations),
    Route(R + "/check-suites/{suite_id:int}", get_suite),
    Route(R + "/check-suites/{suite_id:int}/check-runs", get_suite),
]
