"""One customer tenant's Graph connection: raw JSON calls, paging and `$batch`, through msgraph-sdk.

Every request goes through msgraph-sdk's request adapter and middleware pipeline (auth, redirects,
telemetry). The SDK's own retry handler is switched off: it cannot read fractional Retry-After values
and never looks inside a batch, so throttling and retries are handled here, per request and per item.

The SDK is async: create one `GraphClient` per event loop (per job) and use it as an async context
manager.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from asgiref.sync import sync_to_async
from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from migrations_engine.audit.writer import (
    AuditContext,
    WriteIntent,
    WriteOutcome,
    record_intents,
    record_outcomes,
)
from migrations_engine.faults import crash_point
from migrations_engine.graph.auth import AppToken, TenantTokenProvider, acquire_app_token
from migrations_engine.graph.config import GraphConfig
from migrations_engine.graph.errors import (
    GraphAuditMissing,
    GraphConfigError,
    GraphError,
    GraphHostNotAllowed,
    GraphUnavailable,
)
from migrations_engine.graph.fair_share import FairShare
from migrations_engine.graph.pacing import Pacer, request_family, request_ru
from migrations_engine.graph.retry import parse_retry_after, wait_retry_after

logger = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 20
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass
class GraphResponse:
    """A Graph answer: status, JSON body (None when empty) and the ids Microsoft support asks for."""

    status: int
    body: Any
    headers: dict[str, str]
    request_id: str
    client_request_id: str


@dataclass
class BatchItem:
    """One request inside a `$batch`: a relative URL, optional JSON body and dependencies."""

    id: str
    method: str
    url: str
    body: Any = None
    depends_on: Sequence[str] = ()
    client_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    target: str = ""
    action: str = ""
    before: Any = None

    def as_json(self) -> dict[str, Any]:
        headers = {"client-request-id": self.client_request_id}
        item: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url, "headers": headers}
        if self.body is not None:
            item["body"] = self.body
            headers["Content-Type"] = "application/json"
        if self.depends_on:
            item["dependsOn"] = list(self.depends_on)
        return item


@dataclass
class BatchResult:
    """One item's own answer from a `$batch` (the outer status says nothing about the items)."""

    id: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    intent: Any = None  # the audit intent row, for writes (to reconcile an unknown outcome later)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(_header(self.headers, "Retry-After"))

    @property
    def error_code(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code", ""))
        return ""


def _header(headers: dict[str, str], name: str) -> str | None:
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


class GraphClient:
    """Graph for one customer tenant, for the life of one event loop.

    Reads go through `send`/`get_json`/`iter_pages`/`batch_reads`. Writes go only through `write` and
    `batch_writes`, which record the audit intent before sending and the outcome after, so no caller can
    change a tenant without a trace. With `dry_run=True` writes are recorded as intended, never sent.
    """

    def __init__(
        self,
        tenant: str,
        config: GraphConfig | None = None,
        *,
        audit: AuditContext | None = None,
        dry_run: bool = False,
        user_count: int | None = None,
    ) -> None:
        self.tenant = str(tenant)
        self.config = config or GraphConfig.from_settings()
        self.audit = audit
        self.dry_run = dry_run
        # Graph's resource-unit budget depends on the tenant's size; unknown = the smallest budget.
        self.user_count = user_count
        self._tokens = TenantTokenProvider(self.config, self.tenant)
        self._rates = self.config.pacing_rates
        self.pacer = Pacer(self.config.pacing_redis_url)
        self.share = FairShare(self.pacer, self.config.client_id, self.tenant, self._rates)
        self._slow_ttl = self._rates.slow_ttl_s
        self._http: httpx.AsyncClient | None = None
        self.sdk: GraphServiceClient | None = None
        self.adapter: GraphRequestAdapter | None = None

    async def __aenter__(self) -> GraphClient:
        timeout = httpx.Timeout(self.config.read_timeout, connect=self.config.connect_timeout)
        # trust_env=False: proxies and CA bundles from the environment must not change where tokens go.
        verify = ssl.create_default_context(cafile=self.config.ca_bundle) if self.config.ca_bundle else True
        http = httpx.AsyncClient(verify=verify, timeout=timeout, trust_env=False)
        no_sdk_retries = {RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)}
        self._http = GraphClientFactory.create_with_default_middleware(client=http, options=no_sdk_retries)
        self.adapter = GraphRequestAdapter(
            BaseBearerTokenAuthenticationProvider(self._tokens), client=self._http
        )
        self.adapter.base_url = f"{self.config.base_url}/v1.0"
        self.sdk = GraphServiceClient(request_adapter=self.adapter)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.aclose()
        await self.share.aclose()
        await self.pacer.aclose()
        self._http = self.adapter = self.sdk = None

    def saw_users(self, count: int) -> None:
        """At least `count` users exist: the tenant's RU budget may be a larger size class."""
        self.user_count = max(self.user_count or 0, count)

    # --- tokens ------------------------------------------------------------------------------

    async def app_token(self) -> AppToken:
        """The current app-only token's claims (tenant id and consented roles)."""
        return await asyncio.to_thread(acquire_app_token, self.config, self.tenant)

    # --- single requests ---------------------------------------------------------------------

    def url(self, path: str, *, version: str = "v1.0", query: dict[str, Any] | None = None) -> str:
        """An absolute Graph URL for `path` (a path such as /users, or an absolute nextLink)."""
        if path.startswith("https://"):
            url = path
        else:
            url = f"{self.config.base_url}/{version}{path}"
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query, safe="$,")
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "v1.0",
        body: Any = None,
        query: dict[str, Any] | None = None,
        client_request_id: str | None = None,
        writes: int = 0,
        items: int = 0,
    ) -> GraphResponse:
        """Send one request once; any status comes back as a GraphResponse (no raising on 4xx/5xx).

        Paced first (see pacing.py): `writes` is how many writes the request carries and `items` how
        many requests a `$batch` holds.
        """
        if self.adapter is None:
            raise GraphConfigError("GraphClient must be used as 'async with GraphClient(...)'")
        url = self.url(path, version=version, query=query)
        if urlsplit(url).netloc.lower() not in self.config.graph_hosts:
            raise GraphHostNotAllowed(f"Refusing to call {urlsplit(url).netloc}: not a Graph host")
        # The token first: a login round trip between the pacing slot and the send would bunch requests.
        await self._tokens.current_token()
        claims = self._rates.buckets(
            self.config.client_id,
            self.tenant,
            writes=writes,
            ru=request_ru(method, url, items=items),
            family=request_family(url),
            user_count=self.user_count,
            share=await self.share.rate() if writes else None,
        )
        await self.pacer.acquire(claims)
        self.share.wrote(writes)
        info = RequestInformation()
        info.http_method = Method[method.upper()]
        info.url = url
        cid = client_request_id or str(uuid.uuid4())
        info.headers.try_add("client-request-id", cid)
        info.headers.try_add("Accept", "application/json")
        if body is not None:
            info.headers.try_add("Content-Type", "application/json")
            info.content = json.dumps(body).encode()
        span = self.adapter.start_tracing_span(info, method.upper())
        try:
            response = await self.adapter.get_http_response_message(info, span)
        finally:
            span.end()
        headers = dict(response.headers)
        parsed: Any = None
        if response.content:
            try:
                parsed = response.json()
            except ValueError:
                parsed = response.text
        answers = _answers(response.status_code, headers, parsed, items)
        await self.pacer.observe(claims, answers, self._slow_ttl)
        return GraphResponse(
            status=response.status_code,
            body=parsed,
            headers=headers,
            request_id=_header(headers, "request-id") or "",
            client_request_id=_header(headers, "client-request-id") or cid,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        version: str = "v1.0",
        body: Any = None,
        query: dict[str, Any] | None = None,
    ) -> GraphResponse:
        """A read (GET) with retries: a 2xx response, or GraphError / GraphUnavailable.

        Writes are refused here: they go through `write` / `batch_writes`, which audit them.
        """
        if method.upper() != "GET":
            raise GraphAuditMissing(f"{method} {path}: writes go through GraphClient.write (audited)")
        return await self._send(method, path, version=version, body=body, query=query, idempotent=True)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        version: str,
        body: Any,
        query: dict[str, Any] | None,
        idempotent: bool,
        client_request_id: str | None = None,
        writes: int = 0,
        items: int = 0,
    ) -> GraphResponse:
        """Send with retries. 429 is always retried after its Retry-After (a throttled request changed
        nothing). 5xx and timeouts are retried only when `idempotent`: for a write they leave the outcome
        unknown, which the caller reconciles by reading, never by blindly re-sending."""

        token_renewed = False

        def retryable(exc: BaseException) -> bool:
            nonlocal token_renewed
            if isinstance(exc, GraphError) and exc.status == 401 and not token_renewed:
                # Graph refused the token itself (signing keys rolled, the token revoked): it processed
                # nothing, so the request is sent again once, with a token asked for afresh.
                token_renewed = True
                self._tokens.forget()
                return True
            if isinstance(exc, GraphError):
                return exc.status == 429 or (idempotent and exc.status in _RETRYABLE_STATUS)
            return idempotent and isinstance(exc, httpx.TransportError)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=wait_retry_after(wait_exponential_jitter(multiplier=0.5, max=30)),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self.request(
                        method,
                        path,
                        version=version,
                        body=body,
                        query=query,
                        client_request_id=client_request_id,
                        writes=writes,
                        items=items,
                    )
                    if response.status >= 400:
                        raise self._error(method, path, response)
        except httpx.TransportError as exc:
            raise GraphUnavailable(
                method.upper(), self.url(path, version=version), type(exc).__name__
            ) from exc
        return response

    async def evaluate(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """What-If (`POST /beta/identity/conditionalAccess/evaluate`): a POST, but it changes nothing."""
        response = await self._send(
            "POST",
            "/identity/conditionalAccess/evaluate",
            version="beta",
            body=body,
            query=None,
            idempotent=True,
        )
        return list((response.body or {}).get("value", []))

    # --- audited writes ----------------------------------------------------------------------

    def _audit_context(self) -> AuditContext:
        if self.audit is None:
            raise GraphAuditMissing("This GraphClient has no audit context: it cannot write")
        return self.audit

    async def write(
        self,
        method: str,
        path: str,
        *,
        version: str = "v1.0",
        body: Any = None,
        target: str = "",
        action: str = "",
        before: Any = None,
    ) -> GraphResponse | None:
        """One audited write: intent row, request, outcome row. Returns None in dry-run mode.

        Outcomes: 2xx succeeded; 4xx failed (Graph refused: nothing changed); 5xx, timeouts and dropped
        connections unknown (it may have applied). The GraphError / GraphUnavailable is re-raised after
        the outcome row is written.
        """
        ctx = self._audit_context()
        cid = str(uuid.uuid4())
        intent = WriteIntent(
            method=method.upper(),
            path=f"/{version}{path}",
            body=body,
            target=target,
            action=action,
            before=before,
            client_request_id=cid,
            dry_run=self.dry_run,
        )
        [intent_row] = await _db(record_intents)(ctx, [intent])
        if self.dry_run:
            return None
        try:
            response = await self._send(
                method,
                path,
                version=version,
                body=body,
                query=None,
                idempotent=False,
                client_request_id=cid,
                writes=1,
            )
        except GraphError as exc:
            exc.audit_intent = intent_row
            outcome = "unknown" if exc.status >= 500 else "failed"
            await _db(record_outcomes)(
                ctx,
                [
                    WriteOutcome(
                        intent=intent_row,
                        outcome=outcome,
                        http_status=exc.status,
                        request_id=exc.request_id,
                        error=f"{exc.code}: {exc.message}",
                    )
                ],
            )
            raise
        except (GraphUnavailable, asyncio.CancelledError) as exc:
            await _db(record_outcomes)(
                ctx,
                [
                    WriteOutcome(
                        intent=intent_row,
                        outcome="unknown",
                        error=f"no answer: {exc!r}"[:500],
                    )
                ],
            )
            raise
        crash_point(f"after_write:{action}")
        await _db(record_outcomes)(
            ctx,
            [
                WriteOutcome(
                    intent=intent_row,
                    outcome="succeeded",
                    http_status=response.status,
                    request_id=response.request_id,
                    after=response.body if isinstance(response.body, dict) else None,
                )
            ],
        )
        return response

    def _error(self, method: str, path: str, response: GraphResponse) -> GraphError:
        envelope = response.body.get("error") if isinstance(response.body, dict) else None
        envelope = envelope if isinstance(envelope, dict) else {}
        return GraphError(
            response.status,
            str(envelope.get("code") or f"HTTP{response.status}"),
            str(envelope.get("message") or ""),
            method=method.upper(),
            url=path,
            request_id=response.request_id,
            client_request_id=response.client_request_id,
            retry_after=parse_retry_after(_header(response.headers, "Retry-After")),
            body=response.body,
        )

    async def get_json(self, path: str, *, version: str = "v1.0", query: dict[str, Any] | None = None) -> Any:
        """GET and return the JSON body."""
        return (await self.send("GET", path, version=version, query=query)).body

    async def iter_pages(
        self, path: str, *, version: str = "v1.0", query: dict[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield each page's `value`, following `@odata.nextLink` verbatim (it carries the query)."""
        body = await self.get_json(path, version=version, query=query)
        while True:
            yield list(body.get("value", []))
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            body = await self.get_json(next_link)

    # --- $batch ------------------------------------------------------------------------------

    async def batch(self, items: Sequence[BatchItem], *, version: str = "v1.0") -> dict[str, BatchResult]:
        """Send up to 20 GETs in one `$batch` once; return each item's own result by id."""
        if any(item.method.upper() != "GET" for item in items):
            raise GraphAuditMissing("batches with writes go through GraphClient.batch_writes (audited)")
        return await self._batch(items, version=version)

    async def _batch(
        self, items: Sequence[BatchItem], *, version: str, writes: int = 0
    ) -> dict[str, BatchResult]:
        if not items:
            return {}
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"A $batch holds at most {MAX_BATCH_ITEMS} requests, got {len(items)}")
        if len({item.id for item in items}) != len(items):
            raise ValueError("$batch item ids must be unique")
        response = await self._send(
            "POST",
            "/$batch",
            version=version,
            body={"requests": [i.as_json() for i in items]},
            query=None,
            idempotent=writes == 0,
            writes=writes,
            items=len(items),
        )
        results: dict[str, BatchResult] = {}
        for answer in (response.body or {}).get("responses", []):
            results[str(answer.get("id"))] = BatchResult(
                id=str(answer.get("id")),
                status=int(answer.get("status", 0)),
                body=answer.get("body"),
                headers=dict(answer.get("headers") or {}),
            )
        return results

    async def batch_reads(
        self, items: Sequence[BatchItem], *, version: str = "v1.0"
    ) -> dict[str, BatchResult]:
        """Batch GETs, re-sending throttled or failed items (after their Retry-After) until they settle.

        Items still throttled or failing after `max_attempts` rounds come back with their last status.
        """
        pending = {item.id: item for item in items}
        settled: dict[str, BatchResult] = {}
        for round_number in range(1, self.config.max_attempts + 1):
            results = await self.batch(list(pending.values()), version=version)
            waits: list[float] = []
            for item_id in list(pending):
                result = results.get(item_id) or BatchResult(item_id, 0, None)
                settled[item_id] = result
                if result.status in _RETRYABLE_STATUS or result.status == 0:
                    waits.append(result.retry_after or min(30.0, 0.5 * 2 ** (round_number - 1)))
                else:
                    del pending[item_id]
            if not pending:
                break
            if round_number < self.config.max_attempts:
                await asyncio.sleep(max(waits))
        return settled

    async def batch_writes(
        self, items: Sequence[BatchItem], *, version: str = "v1.0"
    ) -> dict[str, BatchResult]:
        """Up to 20 writes in one `$batch`, audited per item: intents before, outcomes after.

        One attempt: throttled items come back as 429 with their own Retry-After (outcome `failed`, nothing
        applied) for the caller to send again as new intents. If the whole batch response is lost, every
        item's outcome is `unknown` and GraphUnavailable is raised. In dry-run mode nothing is sent and
        every item comes back with status 0.
        """
        ctx = self._audit_context()
        intents = [
            WriteIntent(
                method=i.method.upper(),
                path=f"/{version}{i.url}",
                body=i.body,
                target=i.target,
                action=i.action,
                before=i.before,
                client_request_id=i.client_request_id,
                dry_run=self.dry_run,
            )
            for i in items
        ]
        rows = await _db(record_intents)(ctx, intents)
        if self.dry_run:
            return {i.id: BatchResult(i.id, 0, None) for i in items}
        try:
            results = await self._batch(items, version=version, writes=len(items))
        except (GraphError, GraphUnavailable, asyncio.CancelledError) as exc:
            # The caller settles unknown outcomes by reading and must record that against these intents.
            exc.audit_intents = rows
            status = exc.status if isinstance(exc, GraphError) else None
            sure_nothing_applied = isinstance(exc, GraphError) and 400 <= exc.status < 500
            await _db(record_outcomes)(
                ctx,
                [
                    WriteOutcome(
                        intent=row,
                        outcome="failed" if sure_nothing_applied else "unknown",
                        http_status=status,
                        error=f"batch: {exc!r}"[:500],
                    )
                    for row in rows
                ],
            )
            raise
        crash_point(f"after_write:{items[0].action}" if items else "after_write:")
        outcomes = []
        for item, row in zip(items, rows, strict=True):
            result = results.get(item.id) or BatchResult(item.id, 0, None)
            if result.ok:
                outcome = "succeeded"
            elif result.status == 0 or result.status >= 500:
                outcome = "unknown"
            else:
                outcome = "failed"
            outcomes.append(
                WriteOutcome(
                    intent=row,
                    outcome=outcome,
                    http_status=result.status or None,
                    request_id=_header(result.headers, "request-id") or "",
                    error="" if result.ok else f"{result.error_code or result.status}",
                )
            )
        await _db(record_outcomes)(ctx, outcomes)
        for item, row in zip(items, rows, strict=True):
            results.setdefault(item.id, BatchResult(item.id, 0, None)).intent = row
        return results


def _answers(status: int, headers: dict[str, str], body: Any, items: int) -> list[tuple[int, dict]]:
    """(status, headers) of each answer a response holds, for pacing: a `$batch`'s items carry their own
    throttling headers; any other response is its own one answer."""
    responses = body.get("responses") if items and isinstance(body, dict) else None
    if not isinstance(responses, list):
        return [(status, headers)]
    return [
        (int(a.get("status") or 0), a.get("headers") if isinstance(a.get("headers"), dict) else {})
        for a in responses
        if isinstance(a, dict)
    ]


def _db(fn):
    """Run an ORM function from async code (audit rows are written in their own transactions)."""
    return sync_to_async(fn, thread_sensitive=True)
