"""Webhook deliveries from the GitHub double, signed and sent over real HTTP like GitHub's Hookshot.

Events caused by API calls go through one background thread in order, so API responses never wait on
the receiver; tests can also send a delivery synchronously and read its status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx


@dataclass
class Delivery:
    id: str
    event: str
    payload: dict
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def action(self) -> str | None:
        return self.payload.get("action")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Builds, signs, sends and records deliveries. ``url`` None records without sending."""

    def __init__(self, url: str | None, secret: str, hook_id: int = 1, app_id: int = 0) -> None:
        self.url = url
        self.secret = secret
        self.hook_id = hook_id
        self.app_id = app_id
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        # Targets are local http; verify=False skips loading CA certificates (~0.1 s per client).
        self._client = httpx.Client(timeout=15.0, trust_env=False, verify=False)
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def build(self, event: str, payload: dict, delivery_id: str | None = None) -> Delivery:
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery_id = delivery_id or str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/d1f4e5a",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
            "X-Hub-Signature": "sha1=" + hmac.new(self.secret.encode(), body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": sign(self.secret, body),
        }
        delivery = Delivery(delivery_id, event, json.loads(body), body, headers)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def emit(self, event: str, payload: dict) -> Delivery:
        """Queue a delivery; the payload is frozen now, sent later by the sender thread."""
        delivery = self.build(event, payload)
        self._queue.put(delivery)
        return delivery

    def send(self, event: str, payload: dict, delivery_id: str | None = None) -> Delivery:
        """Deliver now, in the caller's thread, and return the delivery with its response status."""
        delivery = self.build(event, payload, delivery_id)
        self._post(delivery)
        return delivery

    def _post(self, delivery: Delivery) -> None:
        try:
            if self.url is None:
                delivery.error = "no webhook target configured"
                return
            response = self._client.post(self.url, content=delivery.body, headers=delivery.headers)
            delivery.status = response.status_code
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        finally:
            delivery.done.set()

    def _run(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                self._post(delivery)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def idle(self) -> bool:
        """Every queued delivery has been answered (so a stored one is in Redis)."""
        return not self._queue.unfinished_tasks

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery has been attempted."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def find(self, event: str | None = None, action: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries
                    if (event is None or d.event == event) and (action is None or d.action == action)]

    def wait_for(self, event: str, action: str | None = None, count: int = 1,
                 timeout: float = 10.0) -> list[Delivery]:
        """The first ``count`` matching deliveries once they have been attempted; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(event, action)
            if len(found) >= count and all(d.done.is_set() for d in found[:count]):
                return found[:count]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} {event}.{action} deliveries after {timeout}s, "
                                   f"wanted {count}")
            time.sleep(0.01)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
        self._client.close()
