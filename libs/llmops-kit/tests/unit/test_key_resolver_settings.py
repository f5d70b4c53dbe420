"""Which keys a service accepts: development mode, the bootstrap admin key, refusing to start."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from llmops_kit.auth import Principal, Role
from llmops_kit.errors import Unauthenticated
from llmops_kit.key_resolver import KeyResolver, StartupRefused, build_resolver, static_principals
from llmops_kit.keys import ApiKey, new_key, split_key
from llmops_kit.settings import ServiceSettings

pytestmark = pytest.mark.unit
ADMIN = "a-bootstrap-admin-key-of-30-chars"


class MemoryStore:
    def __init__(self, keys: list[ApiKey] | None = None) -> None:
        self.keys = keys or []
        self.touched: dict[str, datetime] = {}

    def generation(self) -> int:
        return len(self.keys)

    def active_keys(self) -> list[ApiKey]:
        return list(self.keys)

    def touch(self, used: dict[str, datetime]) -> None:
        self.touched.update(used)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLMOPS_DEV_MODE", "LLMOPS_API_KEYS", "LLMOPS_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_dev_mode_accepts_the_dev_keys_with_their_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_DEV_MODE", "true")
    keys = static_principals(ServiceSettings())
    assert keys["dev-key-acme"] == Principal("acme", Role.MAINTAINER, "dev-acme-maintainer")
    assert keys["dev-member-acme"] == Principal("acme", Role.MEMBER, "dev-acme-member")
    assert keys["dev-admin-key"] == Principal("platform", Role.ADMIN, "dev-admin")
    monkeypatch.setenv("LLMOPS_API_KEYS", "")  # as docker-compose passes it when unset
    assert static_principals(ServiceSettings()) == keys
    monkeypatch.setenv("LLMOPS_API_KEYS", "k-x=initech")
    assert set(static_principals(ServiceSettings())) == {"k-x", "dev-admin-key"}


def test_without_dev_mode_only_the_bootstrap_key_is_static(monkeypatch: pytest.MonkeyPatch) -> None:
    assert static_principals(ServiceSettings()) == {}
    monkeypatch.setenv("LLMOPS_ADMIN_KEY", ADMIN)
    assert static_principals(ServiceSettings()) == {
        ADMIN: Principal("platform", Role.ADMIN, "bootstrap")}


async def test_no_keys_and_no_dev_mode_refuses_to_start(caplog: pytest.LogCaptureFixture) -> None:
    resolver = build_resolver(ServiceSettings(), MemoryStore())  # type: ignore[arg-type]
    with pytest.raises(StartupRefused, match=r"LLMOPS_ADMIN_KEY.*LLMOPS_DEV_MODE=true"):
        await resolver.start()


async def test_a_key_in_the_store_is_enough_to_start() -> None:
    _, full, digest = new_key()
    parts = split_key(full)
    assert parts is not None
    store = MemoryStore([ApiKey(parts[0], "acme", Role.MEMBER, "", datetime.now(UTC),
                                secret_hash=digest)])
    resolver = build_resolver(ServiceSettings(), store)  # type: ignore[arg-type]
    await resolver.start()
    assert resolver.resolve(full).tenant == "acme"
    await resolver.stop()
    assert list(store.touched) == [parts[0]]


async def test_dev_mode_starts_without_keys_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LLMOPS_DEV_MODE", "true")
    with caplog.at_level(logging.WARNING):
        resolver = build_resolver(ServiceSettings(), MemoryStore())  # type: ignore[arg-type]
    await resolver.start()
    assert resolver.resolve("dev-key-globex").tenant == "globex"
    await resolver.stop()
    assert any("DEVELOPMENT MODE IS ON" in r.getMessage() for r in caplog.records)


def test_dev_keys_outside_dev_mode_and_short_admin_keys_fail_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_API_KEYS", "secret-one=acme")
    with pytest.raises(StartupRefused, match="only in development mode") as err:
        build_resolver(ServiceSettings(), MemoryStore())  # type: ignore[arg-type]
    assert "secret-one" not in str(err.value)
    monkeypatch.delenv("LLMOPS_API_KEYS")
    monkeypatch.setenv("LLMOPS_ADMIN_KEY", "short")
    with pytest.raises(StartupRefused, match="at least 24 characters") as err:
        build_resolver(ServiceSettings(), MemoryStore())  # type: ignore[arg-type]
    assert "short" not in str(err.value)


def test_malformed_dev_keys_fail_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_API_KEYS", "k1=acme,secret-two=acme:boss")
    with pytest.raises(ValueError, match="unknown role 'boss'") as err:
        ServiceSettings()
    assert "secret-two" not in str(err.value)


@pytest.mark.parametrize(("key", "reason"), [(None, "MISSING_API_KEY"), ("", "MISSING_API_KEY"),
                                             ("dev-key-acme", "INVALID_API_KEY"),
                                             ("lk_0123456789ab_" + "x" * 43, "INVALID_API_KEY")])
def test_unknown_keys(key: str | None, reason: str) -> None:
    resolver = KeyResolver(None, {})
    with pytest.raises(Unauthenticated) as err:
        resolver.resolve(key)
    assert err.value.reason == reason
    assert not key or key not in str(err.value)
