"""An S3-compatible bucket on a local port: path-style PUT, GET and DELETE of objects, each request's AWS
Signature Version 4 checked against what botocore (AWS's own signer) computes for it with the bucket's secret.

A wrong signature answers 403 ``SignatureDoesNotMatch`` as S3 does; ``objects`` holds what was stored.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .redis_process import free_port

KEY_ID, SECRET, REGION, BUCKET = "AKIDMULLTEST", "s3-test-secret-0123456789", "eu-west-1", "sessions"
_DATE = re.compile(r"^\d{8}T\d{6}Z$")


class BucketDouble:
    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET, region: str = REGION) -> None:
        self.credentials = Credentials(key_id, secret)
        self.region = region
        self.objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, object name, status)
        self.port = free_port()
        routes = [Route("/{bucket}/{name:path}", self.object, methods=["GET", "PUT", "DELETE"])]
        self.app = Starlette(routes=routes)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{BUCKET}"

    async def object(self, request: Request) -> Response:
        body = await request.body()
        name = request.path_params["name"]
        status = 403 if not self._signed(request, body) else 404 if request.path_params["bucket"] != BUCKET else 0
        if status == 403:
            response = _error(403, "SignatureDoesNotMatch")
        elif status == 404:
            response = _error(404, "NoSuchBucket")
        elif request.method == "PUT":
            self.objects[name] = body
            response = Response(status_code=200)
        elif request.method == "GET":
            found = self.objects.get(name)
            response = _error(404, "NoSuchKey") if found is None else Response(found, status_code=200)
        else:
            self.objects.pop(name, None)
            response = Response(status_code=204)
        self.requests.append((request.method, name, response.status_code))
        return response

    def _signed(self, request: Request, body: bytes) -> bool:
        """Whether the request carries the signature AWS's signer makes for it with this bucket's credentials."""
        given = request.headers.get("authorization", "")
        stamp = request.headers.get("x-amz-date", "")
        if not given or not _DATE.match(stamp):
            return False
        expected = AWSRequest(method=request.method, url=str(request.url), data=body, headers={
            "host": request.headers["host"], "x-amz-date": stamp,
            "x-amz-content-sha256": request.headers.get("x-amz-content-sha256", "")})
        # add_auth signs at the clock's time, which may be a second past the request's: botocore's own steps of
        # add_auth instead, at the request's time.
        signer = SigV4Auth(self.credentials, "s3", self.region)
        expected.context["timestamp"] = stamp
        signer._modify_request_before_signing(expected)
        signature = signer.signature(signer.string_to_sign(expected, signer.canonical_request(expected)), expected)
        signer._inject_signature_to_request(expected, signature)
        return bool(expected.headers["Authorization"] == given)

    @contextmanager
    def serving(self) -> Iterator[BucketDouble]:
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            threading.Event().wait(0.01)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(5)


def _error(status: int, code: str) -> Response:
    return Response(f"<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>", status_code=status,
                    media_type="application/xml")
