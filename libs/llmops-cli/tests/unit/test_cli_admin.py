"""`llmops tenants|keys|audit` against a fake AdminService on a real gRPC socket; which key
the CLI sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops_cli.client import admin_key, api_key_for
from llmops_cli.main import main
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit
AT = Timestamp(seconds=1735787045)  # 2025-01-02T03:04:05Z
KEY = admin_pb2.ApiKey(key_id="0123456789ab", tenant_id="acme", role=admin_pb2.ROLE_MEMBER,
                       description="ci", created_at=AT)
SECRET = "lk_0123456789ab_" + "s" * 43


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, str]]] = []

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request, dict(context.invocation_metadata())))

    def CreateTenant(self, request, context):  # type: ignore[no-untyped-def]
        self._record("CreateTenant", request, context)
        return admin_pb2.Tenant(tenant_id=request.tenant_id, display_name=request.display_name,
                                created_at=AT)

    def ListTenants(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListTenants", request, context)
        return admin_pb2.ListTenantsResponse(tenants=[
            admin_pb2.Tenant(tenant_id="acme", display_name="Acme", created_at=AT)])

    def DeleteTenant(self, request, context):  # type: ignore[no-untyped-def]
        self._record("DeleteTenant", request, context)
        return admin_pb2.DeleteTenantResponse(tenant_id=request.tenant_id, revoked_keys=2)

    def CreateKey(self, request, context):  # type: ignore[no-untyped-def]
        self._record("CreateKey", request, context)
        return admin_pb2.CreatedKey(key=KEY, secret=SECRET)

    def ListKeys(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListKeys", request, context)
        revoked = admin_pb2.ApiKey(key_id="ba9876543210", tenant_id="acme",
                                   role=admin_pb2.ROLE_MAINTAINER, created_at=AT, revoked_at=AT)
        return admin_pb2.ListKeysResponse(keys=[KEY, revoked])

    def RevokeKey(self, request, context):  # type: ignore[no-untyped-def]
        self._record("RevokeKey", request, context)
        if request.key_id == "nope":
            context.set_trailing_metadata((("x-error-reason", "KEY_NOT_FOUND"),))
            context.abort(grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND: no key 'nope'")
        return admin_pb2.ApiKey(key_id=request.key_id, tenant_id="acme",
                                role=admin_pb2.ROLE_MEMBER, created_at=AT, revoked_at=AT)

    def ListAuditEntries(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListAuditEntries", request, context)
        return admin_pb2.ListAuditEntriesResponse(entries=[admin_pb2.AuditEntry(
            sequence=7, occurred_at=AT, actor="bootstrap", actor_tenant="platform",
            tenant_id="acme", action="key.create", target="0123456789ab",
            after_json='{"role": "member"}', service="model-registry")])


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAdmin]:
    fake = FakeAdmin()
    with fake_service(admin_pb2_grpc.add_AdminServiceServicer_to_server, fake,
                      "LLMOPS_ADMIN_ADDR", monkeypatch):
        yield fake


def test_tenants_create_list_delete(admin: FakeAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tenants", "create", "initech", "--name", "Initech"]) == 0
    assert capsys.readouterr().out.strip() == "created tenant initech"
    assert run(["tenants", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"tenants": [
        {"tenant_id": "acme", "display_name": "Acme", "created_at": "2025-01-02T03:04:05Z"}]}
    with pytest.raises(SystemExit, match="add --yes"):
        main(["tenants", "delete", "acme"])
    assert [c[0] for c in admin.calls] == ["CreateTenant", "ListTenants"]
    assert run(["tenants", "delete", "acme", "--yes"]) == 0
    assert "2 key(s) revoked" in capsys.readouterr().out
    method, req, md = admin.calls[-1]
    assert (method, req.tenant_id, md["x-api-key"]) == ("DeleteTenant", "acme", "dev-admin-key")


def test_keys_create_shows_the_secret_once_and_passes_role_and_ttl(
        admin: FakeAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "create", "--tenant", "acme", "--role", "maintainer", "--ttl", "12h",
                "--description", "ci"]) == 0
    out = capsys.readouterr().out
    assert out.count(SECRET) == 1 and "only time the key is shown" in out
    _, req, _ = admin.calls[-1]
    assert (req.tenant_id, req.role, req.ttl_seconds, req.description) == (
        "acme", admin_pb2.ROLE_MAINTAINER, 43200, "ci")
    assert run(["keys", "create", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["secret"], data["key"]["key_id"], data["key"]["role"]) == (
        SECRET, "0123456789ab", "ROLE_MEMBER")


def test_keys_list_and_revoke(admin: FakeAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "list", "--tenant", "acme", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "0123456789ab  acme  member  created 2025-01-02T03:04:05Z  (ci)",
        "ba9876543210  acme  maintainer  created 2025-01-02T03:04:05Z  "
        "REVOKED 2025-01-02T03:04:05Z"]
    assert (admin.calls[-1][1].tenant_id, admin.calls[-1][1].include_revoked) == ("acme", True)
    assert run(["keys", "revoke", "0123456789ab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] == "2025-01-02T03:04:05Z"
    assert run(["keys", "revoke", "nope", "--json"]) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "NOT_FOUND"


def test_audit_filters_and_json(admin: FakeAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC).timestamp()
    assert run(["audit", "--tenant", "acme", "--action", "key.create", "--since", "1h",
                "--limit", "5", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["entries"]
    assert (entry["sequence"], entry["actor"], entry["after_json"]) == (
        "7", "bootstrap", '{"role": "member"}')
    _, req, _ = admin.calls[-1]
    assert (req.tenant_id, req.action, req.limit) == ("acme", "key.create", 5)
    assert abs(req.since.seconds - (before - 3600)) < 60
    assert run(["audit"]) == 0
    assert capsys.readouterr().out.strip() == (
        "#7 2025-01-02T03:04:05Z key.create 0123456789ab tenant=acme by bootstrap (platform) "
        "via model-registry")


def test_which_key_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLMOPS_DEV_MODE", "LLMOPS_API_KEYS", "LLMOPS_API_KEY", "LLMOPS_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="no API key for tenant 'acme'"):
        api_key_for("acme")
    with pytest.raises(SystemExit, match="LLMOPS_ADMIN_KEY"):
        admin_key()
    monkeypatch.setenv("LLMOPS_DEV_MODE", "true")
    assert api_key_for("acme") == "dev-key-acme"  # the maintainer key before dev-member-acme
    assert admin_key() == "dev-admin-key"
    monkeypatch.setenv("LLMOPS_ADMIN_KEY", "from-env")
    assert admin_key() == "from-env" and admin_key("explicit") == "explicit"
