"""TenantDeleted consumer helpers: which tenant ids are refused, replica groups."""

from __future__ import annotations

import pytest

from llmops_kit.errors import PoisonMessage
from llmops_kit.tenants import check_tenant_id, replica_group

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("tenant", "reason"), [
    ("", "MISSING_TENANT_ID"),
    ("   ", "MISSING_TENANT_ID"),
    ("x" * 129, "BAD_TENANT_ID"),
    ("acme\n", "BAD_TENANT_ID"),
])
def test_unusable_tenant_ids_are_poison(tenant: str, reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        check_tenant_id(tenant)
    assert info.value.reason == reason


def test_ordinary_tenant_ids_pass() -> None:
    for tenant in ("acme", "t-0123456789", "x" * 128, "Ünïcode tenant"):
        check_tenant_id(tenant)


def test_replica_groups_are_unique_per_call_and_keep_the_base() -> None:
    groups = {replica_group("inference-tenants") for _ in range(5)}
    assert len(groups) == 5 and all(g.startswith("inference-tenants-") for g in groups)
