"""The audit list at ten million rows: a period filter that costs one index range (instead of the date
hierarchy's DISTINCT over every row's date), a paginator that counts at most COUNT_CAP rows (instead
of COUNT(*) over the filtered set on every page), keyset pages past them (`?before=<row id>`), and a
search that only asks what an index answers. Every filter the list offers has an index ending in
`created_at` (migration 0009), so "newest first" under any filter is an index range."""

from __future__ import annotations

import datetime

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

# Pages by number up to here (20 pages of 100); further back, "Older rows" pages by keyset at the same cost
# however deep: an OFFSET's cost grows with its depth, and faster for a staff member who sees few tenants.
COUNT_CAP = 2_000
PERIODS = {
    "1h": ("Last hour", datetime.timedelta(hours=1)),
    "24h": ("Last 24 hours", datetime.timedelta(days=1)),
    "7d": ("Last 7 days", datetime.timedelta(days=7)),
    "30d": ("Last 30 days", datetime.timedelta(days=30)),
    "90d": ("Last 90 days", datetime.timedelta(days=90)),
    "1y": ("Last 12 months", datetime.timedelta(days=365)),
}


class PeriodFilter(admin.SimpleListFilter):
    """Rows written in the last hour, day, week, month, quarter or year (`created_at` is indexed)."""

    title = "when"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in PERIODS.items()]

    def queryset(self, request, queryset):
        period = PERIODS.get(self.value() or "")
        if period is None:
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - period[1])


class CappedCountPaginator(Paginator):
    """Counts no further than COUNT_CAP (+1, to know there are more): the list says "more than 2,000
    match" and numbers the pages of the first 2,000 rows; "Older rows" and the filters reach the rest."""

    @cached_property
    def _counted(self) -> int:
        # Without the list's ORDER BY: the database may count along any index (a staff member's tenants'
        # rows through the tenant index) and stop at the cap, instead of walking the time index in order.
        return self.object_list.order_by()[: COUNT_CAP + 1].count()

    @cached_property
    def count(self) -> int:
        """The rows the numbered pages hold: at most COUNT_CAP."""
        return min(self._counted, COUNT_CAP)

    @property
    def capped(self) -> bool:
        """More rows match than the numbered pages hold."""
        return self._counted > COUNT_CAP


class OlderThanFilter(admin.SimpleListFilter):
    """`?before=<row id>`: the rows older than that row in the list's order (newest first), so paging
    past the counted rows costs one index range from there, not an OFFSET over everything newer.

    Not drawn in the filter bar: the pagination's "Older rows" link sets it."""

    title = "older than"
    parameter_name = "before"

    def lookups(self, request, model_admin):
        return [(self.value(), f"row {self.value()}")] if self.value() else []

    def has_output(self) -> bool:
        return True  # applied whenever it is in the URL

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        row = id_param(self.value())
        if row is None:
            return queryset.none()
        created_at = queryset.model.objects.filter(pk=row).values_list("created_at", flat=True).first()
        if created_at is None:
            return queryset.none()
        # (created_at, id) < (that row's): one range on each filter's (…, created_at) index.
        return queryset.filter(created_at__lte=created_at).exclude(created_at=created_at, pk__gte=row)


def id_param(value: str | None) -> int | None:
    """A row or run id from the query string, or None when it is not one (letters, 0, past a bigint):
    such a filter matches nothing rather than reaching the database as an error."""
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if 0 < number < 2**63 else None


def search_rows(queryset, term: str):
    """What the audit list's search box finds, each by an index: a Graph `request-id` or
    `client-request-id` exactly, or a target (a UPN, an object id, a policy) by its beginning, any case."""
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(request_id=term) | Q(client_request_id=term) | Q(target__istartswith=term))
