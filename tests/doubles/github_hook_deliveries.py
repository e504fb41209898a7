"""The GitHub double's App webhook deliveries: list, get and redeliver, from the webhook sender's records.

GitHub retries no failed delivery by itself; Mull's redelivery cron reads these routes, so they answer like
GitHub's: newest first, paged by an opaque ``cursor``, one item per attempt, redeliveries keep the guid.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .github_http import ApiError, double_of, require_jwt
from .github_state import iso
from .webhooks import Delivery, WebhookSender

if TYPE_CHECKING:
    from starlette.applications import Starlette


class HookLog:
    """Numbers and timestamps the sender's deliveries, which record neither; the number is the send order.

    It wraps ``sender.build`` so every delivery (API webhooks, ``deliver``/``label_issue``, redeliveries) is
    stamped when it is made.
    """

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender
        self._made: dict[int, float] = {}  # id(Delivery) -> time.time() at build
        self._started = time.time()
        build = sender.build

        def stamped_build(event: str, payload: dict, delivery_id: str | None = None) -> Delivery:
            delivery = build(event, payload, delivery_id)
            self._made.setdefault(id(delivery), time.time())
            return delivery

        sender.build = stamped_build  # type: ignore[method-assign]

    def attempts(self) -> list[tuple[int, Delivery, bool]]:
        """(delivery id, delivery, redelivery) for every attempt made so far, oldest first."""
        seen: set[str] = set()
        out = []
        for number, delivery in enumerate(list(self.sender.deliveries), start=1):
            out.append((number, delivery, delivery.id in seen))
            seen.add(delivery.id)
        return [a for a in out if a[1].done.is_set()]  # in flight: GitHub lists it once it has an outcome

    def made_at(self, delivery: Delivery) -> float:
        return self._made.get(id(delivery), self._started)


def attach(app: Starlette, sender: WebhookSender) -> None:
    """Give the double's app its delivery log (called once from ``build_app``)."""
    app.state.hook_log = HookLog(sender)


def _log(request: Request) -> HookLog:
    return request.app.state.hook_log


def outcome(delivery: Delivery) -> tuple[int, str]:
    """(status_code, status) as GitHub shows them: 0 when the target could not be reached."""
    if delivery.status is None:
        return 0, "failed to connect" if "connect" in (delivery.error or "").lower() else delivery.error or "failed"
    if 200 <= delivery.status < 300:
        return delivery.status, "OK"
    return delivery.status, f"Invalid HTTP Response: {delivery.status}"


def item_json(log: HookLog, number: int, delivery: Delivery, redelivery: bool) -> dict[str, Any]:
    code, status = outcome(delivery)
    payload = delivery.payload
    return {
        "id": number, "guid": delivery.id,
        "delivered_at": iso(datetime.fromtimestamp(log.made_at(delivery), UTC)),
        "redelivery": redelivery, "duration": 0.0, "status": status, "status_code": code,
        "event": delivery.event, "action": delivery.action,
        "installation_id": (payload.get("installation") or {}).get("id"),
        "repository_id": (payload.get("repository") or {}).get("id"),
        "throttled_at": None,
    }


def _cursor(raw: str | None) -> int | None:
    """Our cursors are ``v1_<delivery id>``: the page starts below that id."""
    if raw is None:
        return None
    prefix, _, number = raw.partition("_")
    if prefix != "v1" or not number.isdigit():
        raise ApiError(400, "Invalid cursor")
    return int(number)


async def list_deliveries(request: Request) -> JSONResponse:
    require_jwt(request)
    params = request.query_params
    try:
        per_page = max(1, min(100, int(params.get("per_page", 30))))
    except ValueError:
        raise ApiError(400, "Invalid per_page parameter") from None
    below = _cursor(params.get("cursor"))
    wanted = params.get("status")
    log = _log(request)
    items = [item_json(log, n, d, r) for n, d, r in reversed(log.attempts()) if below is None or n < below]
    if wanted in ("success", "failure"):
        items = [i for i in items if (i["status"] == "OK") == (wanted == "success")]
    page = items[:per_page]
    headers = {}
    if len(items) > per_page:
        url = request.url.include_query_params(per_page=per_page, cursor=f"v1_{page[-1]['id']}")
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(page, headers=headers)


def _attempt(request: Request) -> tuple[HookLog, int, Delivery, bool]:
    log = _log(request)
    wanted = request.path_params["delivery_id"]
    for number, delivery, redelivery in log.attempts():
        if number == wanted:
            return log, number, delivery, redelivery
    raise ApiError(404, "Not Found")


async def get_delivery(request: Request) -> JSONResponse:
    require_jwt(request)
    log, number, delivery, redelivery = _attempt(request)
    return JSONResponse({**item_json(log, number, delivery, redelivery),
                         "url": log.sender.url or "",
                         "request": {"headers": delivery.headers, "payload": delivery.payload},
                         "response": {"headers": {}, "payload": None}})


async def redeliver(request: Request) -> JSONResponse:
    """Re-send the payload under the same guid, re-signed with the current secret, as GitHub does.

    Sent before the 202 (GitHub sends just after), so a test sees the new attempt once the call returns.
    """
    require_jwt(request)
    _, _, delivery, _ = _attempt(request)
    await run_in_threadpool(double_of(request).hooks.send, delivery.event, delivery.payload, delivery.id)
    return JSONResponse({}, 202)


routes = [
    Route("/app/hook/deliveries", list_deliveries),
    Route("/app/hook/deliveries/{delivery_id:int}", get_delivery),
    Route("/app/hook/deliveries/{delivery_id:int}/attempts", redeliver, methods=["POST"]),
]
