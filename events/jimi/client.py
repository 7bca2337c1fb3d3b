"""The Open API client: one signed form POST per call, the account's token cached and refreshed early, a re-login on
code 1004, back-off and a retry on -1 and 1006, every other code a typed exception (events.jimi.errors).

    with JimiClient(endpoint=endpoint_for(account.api_node), credentials=credentials_resolve(account.credential_ref))
        as client:
        response = client.call("jimi.user.device.location.list", {"target": account.jimi_account})

Tokens live in this process's memory only (never in the database), shared by every client of the same endpoint,
app key and user: Jimi refuses clients that fetch tokens too often.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import structlog
from django.conf import settings

from events.jimi.credentials import Credentials
from events.jimi.errors import JimiError, TokenInvalid, TransportError, error_for
from events.jimi.signing import Param, sign, signed_params

log = structlog.get_logger(__name__)
# httpx logs every request at INFO; ours log what matters (logins, back-offs, failed polls) themselves.
logging.getLogger("httpx").setLevel(logging.WARNING)

# The endpoint of each node (domain.models.JimiNode); JIMI_API_URL, when set, replaces all of them.
NODE_URLS = {
    "hk": "https://hk-open.tracksolidpro.com/route/rest",
    "eu": "https://eu-open.tracksolidpro.com/route/rest",
    "us": "https://us-open.tracksolidpro.com/route/rest",
    "ts": "http://open.10000track.com/route/rest",
}

TOKEN_GET = "jimi.oauth.token.get"  # noqa: S105 - a method name
TOKEN_REFRESH = "jimi.oauth.token.refresh"  # noqa: S105 - a method name


def endpoint_for(api_node: str) -> str:
    """JIMI_API_URL when set (a sandbox standing in for Jimi), else the account's own node (Q10)."""
    override: str = settings.JIMI_API_URL
    if override:
        return override
    try:
        return NODE_URLS[api_node]
    except KeyError:
        raise JimiError(f"unknown API node {api_node!r} (known: {', '.join(NODE_URLS)})") from None


@dataclass(frozen=True)
class JimiResponse:
    """One successful answer: the body exactly as received, and what it decodes to."""

    method: str
    params: dict[str, str]  # the method's own parameters (no token, key or signature)
    body: bytes
    document: dict[str, Any]


@dataclass
class Token:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # time.time()


TokenKey = tuple[str, str, str]  # endpoint, app key, user


class TokenCache:
    """Tokens per endpoint, app key and user, for this process."""

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, Token] = {}
        self.lock = threading.RLock()

    def get(self, key: TokenKey) -> Token | None:
        return self._tokens.get(key)

    def put(self, key: TokenKey, token: Token) -> None:
        self._tokens[key] = token

    def forget(self, key: TokenKey, access_token: str | None = None) -> None:
        """Drop the key's token (only if it is still `access_token`, when given: another call may have renewed it)."""
        with self.lock:
            token = self._tokens.get(key)
            if token is not None and (access_token is None or token.access_token == access_token):
                del self._tokens[key]

    def clear(self) -> None:
        with self.lock:
            self._tokens.clear()


TOKENS = TokenCache()


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: Any) -> float:
    # expiresIn is documented as a string and returned as a number (Q2).
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TransportError(f"token response has no usable expiresIn ({type(value).__name__})") from None


class JimiClient:
    def __init__(
        self,
        *,
        endpoint: str,
        credentials: Credentials,
        http: httpx.Client | None = None,
        tokens: TokenCache = TOKENS,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self._own_http = http is None
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(settings.JIMI_TIMEOUT_S, connect=settings.JIMI_CONNECT_TIMEOUT_S),
            headers={"User-Agent": "fleet-platform"},
        )
        self._tokens = tokens
        self._key: TokenKey = (endpoint, credentials.app_key, credentials.user_id)

    def __enter__(self) -> JimiClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # --- one request ---------------------------------------------------------------------------------------------

    def _post(self, method: str, params: Mapping[str, Param]) -> JimiResponse:
        common: dict[str, Param] = {
            "method": method,
            "timestamp": _timestamp(),
            "app_key": self.credentials.app_key,
            "sign_method": "md5",
            "v": "1.0",  # never 0.9: the server would skip the signature check
            "format": "json",
        }
        form = signed_params({**params, **common})
        form["sign"] = sign(form, self.credentials.app_secret)
        try:
            answer = self._http.post(self.endpoint, data=form)
        except httpx.TimeoutException as exc:
            raise TransportError(f"timed out ({type(exc).__name__})", method=method) from None
        except httpx.HTTPError as exc:
            raise TransportError(f"no answer ({type(exc).__name__}: {exc})", method=method) from None
        if answer.status_code != httpx.codes.OK:
            raise TransportError(f"HTTP {answer.status_code}", method=method)
        body = answer.content
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise TransportError("the answer is not JSON", method=method) from None
        if not isinstance(document, dict) or "code" not in document:
            raise TransportError("the answer is not the Open API envelope", method=method)
        if str(document["code"]).strip() != "0":  # 0 or "0" (Q2)
            raise error_for(document["code"], str(document.get("message") or ""), method=method)
        own = {k: v for k, v in signed_params(params).items() if k not in ("access_token", "refresh_token")}
        return JimiResponse(method=method, params=own, body=body, document=document)

    def _retrying(self, method: str, params: Mapping[str, Param]) -> JimiResponse:
        """-1 (busy) and 1006 (too frequent): wait JIMI_RETRY_BACKOFF_S, doubling, for JIMI_RETRY_ATTEMPTS retries."""
        retries, delay = settings.JIMI_RETRY_ATTEMPTS, settings.JIMI_RETRY_BACKOFF_S
        while True:
            try:
                return self._post(method, params)
            except JimiError as exc:
                if not exc.retry or retries <= 0:
                    raise
                log.info("jimi.backoff", method=method, code=exc.code, wait_s=delay)
                time.sleep(delay)
                retries, delay = retries - 1, delay * 2

    # --- tokens --------------------------------------------------------------------------------------------------

    def _keep(self, response: JimiResponse) -> Token:
        result = response.document.get("result")
        if not isinstance(result, dict) or not result.get("accessToken"):
            raise TransportError("token response without accessToken", method=response.method)
        token = Token(
            access_token=str(result["accessToken"]),
            refresh_token=str(result.get("refreshToken") or ""),
            expires_at=time.time() + _seconds(result.get("expiresIn")),
        )
        self._tokens.put(self._key, token)
        return token

    def token_get(self) -> JimiResponse:
        """Log in (jimi.oauth.token.get) and keep the token. The response holds the token: never store it."""
        params = {
            "user_id": self.credentials.user_id,
            "user_pwd_md5": self.credentials.user_pwd_md5,
            "expires_in": settings.JIMI_TOKEN_EXPIRES_IN_S,
        }
        with self._tokens.lock:
            response = self._retrying(TOKEN_GET, params)
            self._keep(response)
        log.info("jimi.token", action="login", endpoint=self.endpoint, user=self.credentials.user_id)
        return response

    def token_refresh(self) -> JimiResponse:
        """Renew the kept token (jimi.oauth.token.refresh); logs in when there is none."""
        with self._tokens.lock:
            token = self._tokens.get(self._key)
            if token is None or not token.refresh_token:
                return self.token_get()
            params = {
                "access_token": token.access_token,
                "refresh_token": token.refresh_token,
                "expires_in": settings.JIMI_TOKEN_EXPIRES_IN_S,
            }
            response = self._retrying(TOKEN_REFRESH, params)
            self._keep(response)
        log.info("jimi.token", action="refresh", endpoint=self.endpoint, user=self.credentials.user_id)
        return response

    def access_token(self) -> str:
        """The kept token; renewed JIMI_TOKEN_REFRESH_BEFORE_S before it expires (a refresh, or a login when the
        refresh is refused or the token is gone)."""
        with self._tokens.lock:
            token = self._tokens.get(self._key)
            now = time.time()
            if token is not None and now < token.expires_at - settings.JIMI_TOKEN_REFRESH_BEFORE_S:
                return token.access_token
            if token is not None and now < token.expires_at:
                try:
                    self.token_refresh()
                except TokenInvalid:
                    self._tokens.forget(self._key)
                    self.token_get()
            else:
                self.token_get()
            renewed = self._tokens.get(self._key)
            assert renewed is not None  # _keep stored it or raised
            return renewed.access_token

    # --- methods -------------------------------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Param]) -> JimiResponse:
        """One method call with the account's token. Code 1004 (token invalid or expired, also mid-poll): log in
        again and retry once; -1 and 1006: back off and retry."""
        relogged = False
        while True:
            token = self.access_token()
            try:
                return self._retrying(method, {**params, "access_token": token})
            except TokenInvalid:
                self._tokens.forget(self._key, token)
                if relogged:
                    raise
                relogged = True
                log.info("jimi.relogin", method=method, endpoint=self.endpoint)
