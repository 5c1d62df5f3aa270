"""The ASGI app that ``benchmarks/load.py`` runs under uvicorn: one ``POST /code``.

``account`` comes as a JSON or urlencoded form field. ``request_code`` answers 200 (``remaining``),
429 (``Retry-After``, the refusal's message) or 503 (``BackendError``: never a code).
Every body carries ``t0``/``t1``, ``time.monotonic()`` just before and after the library
call: one clock for every process of the machine (Linux ``CLOCK_MONOTONIC``), so the load
client can tell a call that started before the store was killed from one after.

Set by the load client: ``AMELI_OTP_LOAD_FLAVOUR`` (``async``: ``AsyncSecurityCodes`` over
``AsyncRedisBackend.from_url``; ``sync``: a plain ``def`` endpoint, which Starlette runs in its
threadpool, over ``RedisBackend.from_url``), ``AMELI_OTP_LOAD_URL``, ``AMELI_OTP_LOAD_SECRET``
(hex; one for every worker, so that they name an account's keys alike). ``from_url``
defaults throughout.
"""

from __future__ import annotations

import math
import os
import time
from urllib.parse import parse_qs

from anyio import from_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ameli_otp import (
    AsyncRedisBackend,
    AsyncSecurityCodes,
    BackendError,
    Issued,
    RedisBackend,
    Refused,
    SecurityCodes,
)
from ameli_otp.messages import message

FLAVOUR = os.environ.get("AMELI_OTP_LOAD_FLAVOUR", "async")
URL = os.environ.get("AMELI_OTP_LOAD_URL", "redis://127.0.0.1:6379/0")
SECRET = bytes.fromhex(os.environ["AMELI_OTP_LOAD_SECRET"])


def answer(result: Issued | Refused | BackendError, t0: float) -> JSONResponse:
    """200 / 429 / 503 (the store failed: which way, for the load report), with the call's
    times."""
    times = {"t0": t0, "t1": time.monotonic()}
    if isinstance(result, BackendError):
        cause = f" ({type(result.__cause__).__name__})" if result.__cause__ else ""
        body = {"error": str(result).split(":")[0] + cause, **times}
        return JSONResponse(body, status_code=503)
    if isinstance(result, Issued):  # the code would be emailed here; never in a response
        return JSONResponse({"remaining": result.remaining, **times})
    wait = math.ceil(result.retry_after.total_seconds()) if result.retry_after else 1
    body = {"reason": result.reason.value, "message": message(result, "en"), **times}
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(wait)})


async def account_of(request: Request) -> str:
    """The ``account`` field of a JSON or urlencoded form body (no python-multipart needed)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return str((await request.json())["account"])
    return parse_qs((await request.body()).decode())["account"][0]


if FLAVOUR == "sync":
    sync_codes = SecurityCodes(RedisBackend.from_url(URL), secret=SECRET)

    def code(request: Request) -> JSONResponse:
        """A plain ``def``, run in Starlette's threadpool; the body is read on the loop."""
        account = from_thread.run(account_of, request)
        t0 = time.monotonic()
        try:
            return answer(sync_codes.request_code(account), t0)
        except BackendError as exc:
            return answer(exc, t0)

else:
    async_codes = AsyncSecurityCodes(AsyncRedisBackend.from_url(URL), secret=SECRET)

    async def code(request: Request) -> JSONResponse:  # type: ignore[misc]
        """request_code on the asyncio face."""
        account = await account_of(request)
        t0 = time.monotonic()
        try:
            return answer(await async_codes.request_code(account), t0)
        except BackendError as exc:
            return answer(exc, t0)


app = Starlette(routes=[Route("/code", code, methods=["POST"])])
