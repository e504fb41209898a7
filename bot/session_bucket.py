"""An S3-compatible bucket for session pages (``MULL_SESSION_BUCKET``), when the operator would rather not keep
them in Redis: AWS S3, MinIO, Cloudflare R2, Ceph and the like.

Only what sessions need: put, get and delete one object, path-style (``https://HOST/BUCKET/KEY``), signed with
AWS Signature Version 4 over the payload's SHA-256. The secret key only signs: it is never sent, and it is one
of the secrets every log line and page is redacted of.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx

SERVICE = "s3"
ALGORITHM = "AWS4-HMAC-SHA256"
EXAMPLE = "https://s3.eu-west-1.amazonaws.com/my-bucket/mull-sessions"


class BucketError(Exception):
    """The bucket answered something else than success (or a missing object): the message says what."""


@dataclass(frozen=True)
class Bucket:
    """``url``: ``http(s)://HOST[:PORT]/BUCKET[/PREFIX]``; objects go under the prefix."""

    url: str
    region: str
    key_id: str
    secret: str = field(repr=False)

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    def object_url(self, name: str) -> str:
        return f"{self.base}/{quote(name, safe='-_.~/')}"


def check_url(url: str) -> str:
    """``url`` when it names a bucket (``http(s)://HOST/BUCKET[/PREFIX]``); ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"is not an http(s) URL of a bucket: write it like {EXAMPLE}")
    if not parts.path.strip("/"):
        raise ValueError(f"names no bucket: put the bucket's name after the host, e.g. {EXAMPLE}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not hold a query, a fragment or credentials: set MULL_SESSION_BUCKET_KEY_ID and "
                         "MULL_SESSION_BUCKET_SECRET for those")
    return url.rstrip("/")


def sign(request: httpx.Request, bucket: Bucket, now: datetime | None = None) -> httpx.Request:
    """Add AWS Signature Version 4 headers to ``request`` (its body already set); returns it."""
    now = now or datetime.now(UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(request.content).hexdigest()
    request.headers["x-amz-date"] = stamp
    request.headers["x-amz-content-sha256"] = payload_hash
    host = request.url.netloc.decode()
    signed = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp}
    names = ";".join(sorted(signed))
    canonical = "\n".join([
        request.method,
        quote(request.url.path, safe="/-_.~"),
        _canonical_query(request.url.query.decode()),
        "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
        names,
        payload_hash,
    ])
    scope = f"{day}/{bucket.region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _signing_key(bucket.secret, day, bucket.region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    request.headers["authorization"] = (f"{ALGORITHM} Credential={bucket.key_id}/{scope}, SignedHeaders={names}, "
                                        f"Signature={signature}")
    return request


def _canonical_query(query: str) -> str:
    pairs = [part.split("=", 1) if "=" in part else [part, ""] for part in query.split("&") if part]
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class BucketClient:
    """Puts, gets and deletes objects of one bucket over ``http`` (a shared client: its pool is reused)."""

    def __init__(self, bucket: Bucket, http: httpx.AsyncClient) -> None:
        self.bucket = bucket
        self.http = http

    async def put(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        await self._send("PUT", name, body, {"content-type": content_type}, ok=(200,))

    async def get(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        response = await self._send("GET", name, b"", {}, ok=(200, 404))
        return None if response.status_code == 404 else response.content

    async def delete(self, name: str) -> None:
        await self._send("DELETE", name, b"", {}, ok=(200, 204, 404))

    async def _send(self, method: str, name: str, body: bytes, headers: dict[str, str],
                    ok: tuple[int, ...]) -> httpx.Response:
        request = sign(self.http.build_request(method, self.bucket.object_url(name), content=body, headers=headers),
                       self.bucket)
        try:
            response = await self.http.send(request)
        except httpx.HTTPError as exc:
            raise BucketError(f"the session bucket at {_where(self.bucket)} is unreachable: "
                              f"{type(exc).__name__}") from None
        if response.status_code not in ok:
            raise BucketError(f"the session bucket at {_where(self.bucket)} answered {method} with HTTP "
                              f"{response.status_code}{_code(response)}: check MULL_SESSION_BUCKET, its region "
                              "and the key's permissions (s3:PutObject, s3:GetObject, s3:DeleteObject)")
        return response


def _where(bucket: Bucket) -> str:
    parts = urlsplit(bucket.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _code(response: httpx.Response) -> str:
    """S3's error code (``<Code>SignatureDoesNotMatch</Code>``), which says more than the status."""
    text = response.text[:2000]
    start, end = text.find("<Code>"), text.find("</Code>")
    return f" ({text[start + 6:end][:60]})" if 0 <= start < end else ""
