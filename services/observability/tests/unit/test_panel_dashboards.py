"""The Grafana dashboards are generated from the panel definitions: the committed JSON is
current, holds every panel once with its SQL, and reads the provisioned data source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_kit.testing import REPO
from llmops_observability import panels
from llmops_observability.panels import grafana

pytestmark = pytest.mark.unit

GRAFANA = REPO / "infra" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"


def committed() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def test_committed_dashboards_are_current() -> None:
    stale = grafana.write(DASHBOARDS, check=True)
    assert stale == [], ("regenerate with `make dashboards` (python -m "
                         f"llmops_observability.panels.grafana infra/grafana/dashboards): {stale}")


def test_check_mode_reports_a_stale_or_foreign_file(tmp_path: Path) -> None:
    assert sorted(grafana.write(tmp_path)) == sorted(grafana.render())
    assert grafana.write(tmp_path, check=True) == []
    (tmp_path / "llmops-drift.json").write_text("{}")
    (tmp_path / "old.json").write_text("{}")
    assert grafana.write(tmp_path, check=True) == ["llmops-drift.json", "old.json"]
    assert grafana.main(["--check", str(tmp_path)]) == 1
    assert grafana.main([str(tmp_path)]) == 0
    assert grafana.write(tmp_path, check=True) == [] and not (tmp_path / "old.json").exists()


def test_dashboards_have_stable_uids_and_the_tenant_variable() -> None:
    boards = committed()
    assert sorted(boards) == ["llmops-answers", "llmops-drift", "llmops-ingestion",
                              "llmops-platform", "llmops-quality", "llmops-training"]
    for uid, board in boards.items():
        assert board["uid"] == uid and board["title"].startswith("LLMOps / ")
        variables = {v["name"]: v for v in board["templating"]["list"]}
        tenant = variables["tenant"]
        assert tenant["includeAll"] is True and tenant["allValue"] == "'*'"
        assert tenant["datasource"] == {"type": "grafana-clickhouse-datasource",
                                        "uid": "llmops-clickhouse"}
    for uid in ("llmops-answers", "llmops-quality"):
        [annotation] = boards[uid]["annotations"]["list"]
        assert annotation["target"]["rawSql"] == panels.ANNOTATIONS[0].sql
        assert annotation["datasource"]["uid"] == "llmops-clickhouse"
    assert boards["llmops-drift"]["annotations"]["list"] == []
    threshold = {v["name"]: v for v in boards["llmops-quality"]["templating"]["list"]}[
        "weak_retrieval_threshold"]
    assert threshold["current"]["value"] == str(panels.WEAK_RETRIEVAL_THRESHOLD)


def test_every_panel_is_on_its_dashboard_once_with_its_sql() -> None:
    seen: dict[str, dict[str, Any]] = {}
    for uid, board in committed().items():
        cells: set[tuple[int, int]] = set()
        for p in board["panels"]:
            panel_id = p["description"].rsplit("(panel ", 1)[1].rstrip(")")
            assert panel_id not in seen
            seen[panel_id] = p
            panel = panels.PANELS[panel_id]
            assert panel.dashboard == uid and p["type"] == panel.kind
            assert p["title"] == panel.title
            assert p["fieldConfig"]["defaults"]["unit"] == panel.unit
            [target] = p["targets"]
            assert target["rawSql"] == panel.sql and target["editorType"] == "sql"
            assert target["format"] == (0 if panel.kind == "timeseries" else 1)
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                    for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & area, "panels overlap"
            cells |= area
    assert sorted(seen) == sorted(panels.PANELS)


def test_datasource_provisioning_uses_the_plugins_fields() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml")
                         .read_text())
    [ds] = doc["datasources"]
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["uid"] == grafana.DATASOURCE_UID
    data = ds["jsonData"]
    # The plugin's backend reads defaultDatabase; a `database` key would be ignored.
    assert "database" not in data and data["defaultDatabase"] == "${CLICKHOUSE_DATABASE}"
    assert {data["host"], data["port"], data["protocol"]} == {
        "${CLICKHOUSE_HOST}", "${CLICKHOUSE_PORT}", "${CLICKHOUSE_PROTOCOL}"}
    assert ds["secureJsonData"] == {"password": "${CLICKHOUSE_PASSWORD}"}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "llmops.yaml")
                              .read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/llmops")


def test_the_docs_list_every_panel() -> None:
    text = (REPO / "docs" / "observability.md").read_text()
    missing = [pid for pid in panels.PANELS if f"`{pid}`" not in text]
    assert missing == [], "add these panels to docs/observability.md"
