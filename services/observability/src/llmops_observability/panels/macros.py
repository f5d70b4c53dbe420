"""The grafana-clickhouse-datasource plugin's SQL macros and the dashboards' template variables,
expanded exactly as Grafana and the plugin (v4) expand them, so a panel's SQL runs the same in
Grafana, in the observability service's QueryPanel and in the tests.

The plugin's macros (pkg/macros/macros.go; ClickHouse functions on Unix times):

    $__timeFilter(c)       c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)
    $__timeFilter_ms(c)    c >= fromUnixTimestamp64Milli(<from ms>) AND c <= fromUnixTimestamp64Milli(<to ms>)
    $__dateFilter(c)       c >= toDate('<from day>') AND c <= toDate('<to day>')
    $__dateTimeFilter(d, t) / $__dt(d, t)   (d's date filter) AND (t's time filter)
    $__fromTime, $__toTime           toDateTime(<s>)
    $__fromTime_ms, $__toTime_ms     fromUnixTimestamp64Milli(<ms>)
    $__timeInterval(c)     toStartOfInterval(toDateTime(c), INTERVAL <interval s> second)
    $__timeInterval_ms(c)  toStartOfInterval(toDateTime64(c, 3), INTERVAL <interval ms> millisecond)
    $__interval_s          <interval s>

Grafana replaces template variables in the browser before the plugin sees the SQL. The
dashboards use `${tenant:singlequote}` (one tenant id, quoted, or the "All" value `'*'`) and
`${weak_retrieval_threshold}` (a number); see VARIABLES.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from llmops_observability.settings import DEFAULT_WEAK_RETRIEVAL_THRESHOLD

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# What the dashboards' tenant variable sends when "All" is picked (its custom all value): no
# tenant id can be "*", so `${tenant:singlequote} = '*'` is true only for "All".
ALL_TENANTS = "*"
# A weak retrieval: the question's best retrieval score (a cosine) is under this (a dashboard
# variable, this is its default; the service's weak_retrieval scores use the same default).
WEAK_RETRIEVAL_THRESHOLD = DEFAULT_WEAK_RETRIEVAL_THRESHOLD
# Grafana picks an interval of about range / max data points; the report and QueryPanel's
# "0 = automatic" do the same with this many buckets, rounded up to a round interval.
AUTO_BUCKETS = 100
_ROUND_INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                    21600, 43200, 86400, 7 * 86400, 30 * 86400)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MacroError(ValueError):
    """A panel's SQL uses a macro wrongly or a parameter is out of range; `reason` is stable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime
    interval_seconds: int

    @property
    def from_ms(self) -> int:
        return (self.since - _EPOCH) // timedelta(milliseconds=1)

    @property
    def to_ms(self) -> int:
        return (self.until - _EPOCH) // timedelta(milliseconds=1)

    @property
    def from_s(self) -> int:
        # Go's time.Unix(): whole seconds, rounded down.
        return self.from_ms // 1000

    @property
    def to_s(self) -> int:
        return self.to_ms // 1000


def auto_interval(since: datetime, until: datetime, buckets: int = AUTO_BUCKETS) -> int:
    """A round bucket width (seconds) giving at most about `buckets` buckets over the range."""
    span = max((_utc(until) - _utc(since)).total_seconds(), 1.0)
    wanted = math.ceil(span / buckets)
    return next((s for s in _ROUND_INTERVALS if s >= wanted), _ROUND_INTERVALS[-1])


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the store's and the gRPC API's time zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_datetime(seconds: int) -> str:
    return f"toDateTime({seconds})"


def _to_datetime64(ms: int) -> str:
    return f"fromUnixTimestamp64Milli({ms})"


def _to_date(value: datetime) -> str:
    return f"toDate('{value:%Y-%m-%d}')"


def _one(name: str, args: list[str]) -> str:
    if len(args) != 1 or not args[0]:
        raise MacroError("BAD_MACRO", f"$__{name} takes 1 argument, got {len(args)}")
    return args[0]


def _date_time_filter(name: str) -> Callable[[TimeRange, list[str]], str]:
    def expand(r: TimeRange, args: list[str]) -> str:
        if len(args) != 2:
            raise MacroError("BAD_MACRO", f"$__{name} takes 2 arguments, got {len(args)}")
        d, t = args
        return (f"({d} >= {_to_date(r.since)} AND {d} <= {_to_date(r.until)}) AND "
                f"({t} >= {_to_datetime(r.from_s)} AND {t} <= {_to_datetime(r.to_s)})")
    return expand


MACROS: dict[str, Callable[[TimeRange, list[str]], str]] = {
    "fromTime": lambda r, a: _to_datetime(r.from_s),
    "toTime": lambda r, a: _to_datetime(r.to_s),
    "fromTime_ms": lambda r, a: _to_datetime64(r.from_ms),
    "toTime_ms": lambda r, a: _to_datetime64(r.to_ms),
    "timeFilter": lambda r, a: (f"{_one('timeFilter', a)} >= {_to_datetime(r.from_s)} AND "
                                f"{a[0]} <= {_to_datetime(r.to_s)}"),
    "timeFilter_ms": lambda r, a: (f"{_one('timeFilter_ms', a)} >= {_to_datetime64(r.from_ms)} "
                                   f"AND {a[0]} <= {_to_datetime64(r.to_ms)}"),
    "dateFilter": lambda r, a: (f"{_one('dateFilter', a)} >= {_to_date(r.since)} AND "
                                f"{a[0]} <= {_to_date(r.until)}"),
    "dateTimeFilter": _date_time_filter("dateTimeFilter"),
    "dt": _date_time_filter("dt"),
    "timeInterval": lambda r, a: (f"toStartOfInterval(toDateTime({_one('timeInterval', a)}), "
                                  f"INTERVAL {max(r.interval_seconds, 1)} second)"),
    "timeInterval_ms": lambda r, a: (f"toStartOfInterval(toDateTime64({_one('timeInterval_ms', a)}"
                                     f", 3), INTERVAL {max(r.interval_seconds, 1) * 1000} "
                                     "millisecond)"),
    "interval_s": lambda r, a: str(max(r.interval_seconds, 1)),
}
# The plugin (sqlds) matches each macro as `\$__name\b(?:\((.*?)\))?` and splits the arguments
# on commas: `$__timeFilter` never matches inside `$__timeFilter_ms`.
_MACRO = re.compile(r"\$__(" + "|".join(sorted(MACROS, key=len, reverse=True))
                    + r")\b(?:\((.*?)\))?", re.ASCII)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_LEFTOVER = re.compile(r"\$(?:__[A-Za-z]|\{|[A-Za-z_])")


def tenant_value(tenant: str | None) -> str:
    """The tenant variable's value: a checked tenant id, or "*" for all tenants (None)."""
    if tenant is None:
        return ALL_TENANTS
    if not TENANT_ID.fullmatch(tenant):
        raise MacroError("INVALID_TENANT", "tenant id must match ^[a-z0-9][a-z0-9-]{0,62}$")
    return tenant


def variables(tenant: str | None) -> dict[str, str]:
    """The dashboards' template variables as Grafana sends them (raw values, unquoted)."""
    return {"tenant": tenant_value(tenant),
            "weak_retrieval_threshold": repr(float(WEAK_RETRIEVAL_THRESHOLD))}


def _format(name: str, value: str, fmt: str | None) -> str:
    if fmt is None or fmt == "raw":
        if name == "tenant":
            # Raw, a tenant id would be an identifier in the SQL: the panels always quote it.
            raise MacroError("BAD_MACRO", "use ${tenant:singlequote}, never a raw tenant")
        return value
    if fmt == "singlequote":
        # Grafana's singlequote format escapes ' as \'; values here never contain one.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise MacroError("BAD_MACRO", f"variable format {fmt!r} is not supported")


def expand(sql: str, since: datetime, until: datetime, interval_seconds: int,
           tenant: str | None) -> str:
    """`sql` with the template variables and the plugin's macros replaced for this range,
    bucket width (0: automatic) and tenant (None: all tenants). Raises MacroError for a bad
    tenant id, an empty or reversed range, or anything left unexpanded."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise MacroError("INVALID_RANGE", "the time range is empty: until must be after since")
    if interval_seconds < 0:
        raise MacroError("INVALID_RANGE", "interval_seconds must not be negative")
    values = variables(tenant)

    def variable(match: re.Match[str]) -> str:
        name, fmt = match.group(1), match.group(2)
        if name not in values:
            raise MacroError("BAD_MACRO", f"unknown dashboard variable ${{{name}}}")
        return _format(name, values[name], fmt)

    out = _VARIABLE.sub(variable, sql)
    r = TimeRange(since, until, interval_seconds or auto_interval(since, until))

    def macro(match: re.Match[str]) -> str:
        args = [] if match.group(2) is None else [a.strip() for a in match.group(2).split(",")]
        return MACROS[match.group(1)](r, args)

    out = _MACRO.sub(macro, out)
    leftover = _LEFTOVER.search(out)
    if leftover:
        raise MacroError("BAD_MACRO", f"unexpanded {out[leftover.start():leftover.start() + 24]!r}")
    return out
