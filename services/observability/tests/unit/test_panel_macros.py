"""The plugin's macros and the dashboard variables, expanded as Grafana and the ClickHouse
plugin expand them, and the rules every panel definition follows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from llmops_observability import panels
from llmops_observability.panels import MacroError, auto_interval, expand

pytestmark = pytest.mark.unit

SINCE = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
UNTIL = datetime(2026, 3, 2, 11, 0, 0, 999000, tzinfo=UTC)
FROM_S, TO_S = 1772445600, 1772449200
FROM_MS, TO_MS = FROM_S * 1000 + 123, TO_S * 1000 + 999


def ex(sql: str, interval: int = 60, tenant: str | None = "acme") -> str:
    return expand(sql, SINCE, UNTIL, interval, tenant)


def test_unix_times_are_the_ranges_ends() -> None:
    assert int(SINCE.timestamp()) == FROM_S and int(UNTIL.timestamp()) == TO_S


@pytest.mark.parametrize(("sql", "expected"), [
    ("$__timeFilter(ts)", f"ts >= toDateTime({FROM_S}) AND ts <= toDateTime({TO_S})"),
    ("$__timeFilter_ms(ts)", f"ts >= fromUnixTimestamp64Milli({FROM_MS}) AND "
                             f"ts <= fromUnixTimestamp64Milli({TO_MS})"),
    ("$__dateFilter(d)", "d >= toDate('2026-03-02') AND d <= toDate('2026-03-02')"),
    ("$__dt(d, t)", f"(d >= toDate('2026-03-02') AND d <= toDate('2026-03-02')) AND "
                    f"(t >= toDateTime({FROM_S}) AND t <= toDateTime({TO_S}))"),
    ("$__dateTimeFilter(d,t)", f"(d >= toDate('2026-03-02') AND d <= toDate('2026-03-02')) AND "
                               f"(t >= toDateTime({FROM_S}) AND t <= toDateTime({TO_S}))"),
    ("$__fromTime,$__toTime", f"toDateTime({FROM_S}),toDateTime({TO_S})"),
    ("$__fromTime_ms $__toTime_ms",
     f"fromUnixTimestamp64Milli({FROM_MS}) fromUnixTimestamp64Milli({TO_MS})"),
    ("$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 60 second)"),
    ("$__timeInterval_ms(ts)",
     "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 60000 millisecond)"),
    ("x / $__interval_s", "x / 60"),
    ("${tenant:singlequote}", "'acme'"),
    ("${weak_retrieval_threshold}", "0.25"),
])
def test_each_macro_expands_as_the_plugin_does(sql: str, expected: str) -> None:
    assert ex(sql) == expected


def test_a_macro_never_matches_inside_a_longer_one() -> None:
    out = ex("$__timeFilter_ms(a) AND $__timeFilter(b) AND $__fromTime_ms < $__fromTime")
    assert out == (f"a >= fromUnixTimestamp64Milli({FROM_MS}) AND a <= "
                   f"fromUnixTimestamp64Milli({TO_MS}) AND b >= toDateTime({FROM_S}) AND "
                   f"b <= toDateTime({TO_S}) AND fromUnixTimestamp64Milli({FROM_MS}) < "
                   f"toDateTime({FROM_S})")


def test_all_tenants_is_the_star_all_value() -> None:
    assert ex("${tenant:singlequote} = '*'", tenant=None) == "'*' = '*'"


@pytest.mark.parametrize("tenant", ["", "Acme", "acme'", "a' OR 1=1 --", "-acme", "a" * 64,
                                    "*", "acme\n"])
def test_a_bad_tenant_id_is_refused(tenant: str) -> None:
    with pytest.raises(MacroError) as err:
        ex("${tenant:singlequote}", tenant=tenant)
    assert err.value.reason == "INVALID_TENANT"


@pytest.mark.parametrize("sql", ["$tenant", "${tenant}", "${nope}", "$__unknownMacro(ts)",
                                 "${tenant:csv}", "$__timeFilter()", "$__dt(a)"])
def test_anything_left_unexpanded_or_misused_is_an_error(sql: str) -> None:
    with pytest.raises(MacroError) as err:
        ex(sql)
    assert err.value.reason == "BAD_MACRO"


def test_an_empty_or_reversed_range_is_refused() -> None:
    for until in (SINCE, SINCE - timedelta(seconds=1)):
        with pytest.raises(MacroError) as err:
            expand("$__fromTime", SINCE, until, 60, None)
        assert err.value.reason == "INVALID_RANGE"


def test_naive_datetimes_are_utc() -> None:
    naive = expand("$__fromTime", SINCE.replace(tzinfo=None), UNTIL.replace(tzinfo=None), 0, None)
    assert naive == f"toDateTime({FROM_S})"


@pytest.mark.parametrize(("span", "interval"), [
    (timedelta(minutes=1), 1), (timedelta(hours=1), 60), (timedelta(hours=6), 300),
    (timedelta(hours=24), 900), (timedelta(days=7), 7200), (timedelta(days=365), 604800)])
def test_automatic_interval_gives_about_a_hundred_round_buckets(span: timedelta,
                                                                interval: int) -> None:
    assert auto_interval(SINCE, SINCE + span) == interval
    assert ex("$__interval_s", interval=0) == "60"


# ---- the rules every panel follows ------------------------------------------------------------

def test_panels_have_unique_ids_known_dashboards_and_kinds() -> None:
    assert len(panels.PANELS) >= 20
    for pid, panel in panels.PANELS.items():
        assert pid == panel.id and re.fullmatch(r"[a-z]+\.[a-z0-9_]+", pid)
        assert panel.dashboard in panels.DASHBOARDS
        assert panel.kind in ("timeseries", "barchart", "stat", "table")
        assert panel.title and panel.description and panel.unit
        assert 1 <= panel.width <= 24
    assert {p.dashboard for p in panels.PANELS.values()} == set(panels.DASHBOARDS)


SQL = {**{p: panel.sql for p, panel in panels.PANELS.items()},
       **{f"annotation:{a.name}": a.sql for a in panels.ANNOTATIONS}}


@pytest.mark.parametrize("panel_id", sorted(SQL))
def test_every_panel_reads_exactly_and_filters_range_and_tenant(panel_id: str) -> None:
    sql = SQL[panel_id]
    tables = re.findall(r"\bFROM\s+([a-z_]+)\b(\s+FINAL)?", sql)
    assert tables, "a panel reads at least one table"
    assert all(final for _, final in tables), f"every table read uses FINAL: {tables}"
    assert sql.count("${tenant:singlequote}") >= 2 * len(tables)
    assert "$__timeFilter_ms(ts)" in sql or ("$__fromTime_ms" in sql and "$__toTime_ms" in sql)
    if panel_id in panels.PANELS and panels.PANELS[panel_id].kind == "timeseries":
        assert re.search(r"\$__timeInterval_ms\(\w+\) AS time\b", sql)
    out = ex(sql, tenant=None)
    assert "$" not in out
