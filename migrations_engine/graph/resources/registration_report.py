"""Reading the registration report (`/reports/authenticationMethods/userRegistrationDetails`).

"List userRegistrationDetails"
(https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails) documents
`$filter` (and the resource page `$orderby`) and nothing else, so the console sends no `$select` or `$top`
and follows the server's own pages. A reader that only needs the users not MFA-registered asks Graph for
them (`isMfaRegistered eq false`, a documented filter): a page or two instead of the whole tenant, which
matters in the reports family's 5 requests per 10 s. Should Graph refuse the filter (a 400 to the first
page: the filter is the only thing in that request that can be refused), the reader logs it and reads the
whole report instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from migrations_engine.graph import GraphClient, GraphError

logger = logging.getLogger(__name__)

REPORT = "/reports/authenticationMethods/userRegistrationDetails"
NOT_REGISTERED = "isMfaRegistered eq false"


class RegistrationRead:
    """One read of the report, page by page. `filtered` says, once the pages are read, whether Graph took
    the filter (the pages hold only matching rows) or refused it (they hold every row); `refused` is then
    the Graph error code."""

    def __init__(self, client: GraphClient, filter_expr: str | None = None) -> None:
        self.client = client
        self.filter_expr = filter_expr
        self.filtered = filter_expr is not None
        self.refused = ""

    async def pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        if self.filter_expr is not None:
            started = False
            try:
                async for page in self.client.iter_pages(REPORT, query={"$filter": self.filter_expr}):
                    started = True
                    yield page
                return
            except GraphError as exc:
                if started or exc.status != 400:
                    raise
                self.filtered, self.refused = False, exc.code
                logger.warning(
                    "Graph refused the registration report's $filter %r (%s %s: %s); reading the whole "
                    "report instead",
                    self.filter_expr,
                    exc.status,
                    exc.code,
                    exc.message,
                )
        async for page in self.client.iter_pages(REPORT):
            yield page
