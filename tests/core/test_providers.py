"""Provider records: who may manage them, what is validated, and that keys never come back out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.llm.types import ProviderKind, UnsafeEndpoint
from core.providers import ProviderFields, ProviderInput, parse_input
from db.database import Database
from db.models import Provider
from tests.fixtures.llm_stack import Stack, make_stack

KEY = "sk-proj-canary0123456789f2c"


@pytest.fixture
async def stack(db: Database) -> Stack:
    return await make_stack(db)


async def test_a_new_tenant_has_the_local_model_enabled_and_as_default(stack: Stack) -> None:
    [local] = await stack.providers.list(stack.viewer)
    assert (local.kind, local.enabled, local.has_credential) == (ProviderKind.LOCAL, True, False)
    assert await stack.providers.default_provider_id(stack.admin) == local.id


async def test_admin_adds_a_provider_and_sees_only_a_masked_hint(stack: Stack) -> None:
    view = await stack.add_provider(
        name="OpenAI", kind="openai", models=["gpt-4o-mini"], api_key=KEY, default_params={"temperature": 0.1}
    )
    assert view.credential_hint == "sk-...9f2c"
    assert view.has_credential
    assert KEY not in repr(view)
    async with stack.db.tenant_session("acme") as session:
        row = await session.scalar(select(Provider).where(Provider.name == "OpenAI"))
    assert row is not None
    assert row.credential_ciphertext is not None
    assert KEY.encode() not in row.credential_ciphertext
    resolved = await stack.providers.resolve(stack.admin, view.id)
    assert resolved.api_key == KEY
    assert KEY not in repr(resolved)


async def test_viewers_may_list_but_not_manage(stack: Stack) -> None:
    view = await stack.add_provider(name="vllm", base_url="http://127.0.0.1:9/v1")
    assert [p.name for p in await stack.providers.list(stack.viewer)] == ["Local model (SmolLM2-135M)", "vllm"]
    with pytest.raises(PermissionDenied, match="cannot add providers; it needs 'admin'"):
        await stack.providers.create(stack.viewer, ProviderInput(name="x", kind=ProviderKind.LOCAL))
    with pytest.raises(PermissionDenied):
        await stack.providers.update(stack.viewer, view.id, ProviderFields(name="y"))
    with pytest.raises(PermissionDenied):
        await stack.providers.set_enabled(stack.viewer, view.id, False)
    with pytest.raises(PermissionDenied):
        await stack.providers.delete(stack.viewer, view.id)


async def test_edit_keeps_the_key_unless_a_new_one_is_given(stack: Stack) -> None:
    view = await stack.add_provider(name="OpenAI", kind="openai", models=["a"], api_key=KEY)
    edited = await stack.providers.update(stack.admin, view.id, ProviderFields(models=["a", "b"], rpm_limit=5))
    assert (edited.models, edited.rpm_limit, edited.credential_hint) == (["a", "b"], 5, "sk-...9f2c")
    assert (await stack.providers.resolve(stack.admin, view.id)).api_key == KEY
    newer = "sk-proj-another0123456789ab"
    edited = await stack.providers.update(stack.admin, view.id, ProviderFields.model_validate({"api_key": newer}))
    assert edited.credential_hint == "sk-...89ab"
    assert (await stack.providers.resolve(stack.admin, view.id)).api_key == newer


async def test_disable_and_delete(stack: Stack) -> None:
    backup = await stack.add_provider(name="backup", base_url="http://127.0.0.1:9/v1")
    main = await stack.add_provider(name="main", base_url="http://127.0.0.1:9/v1", fallback_provider_id=str(backup.id))
    assert not (await stack.providers.set_enabled(stack.admin, main.id, False)).enabled
    await stack.providers.delete(stack.admin, backup.id)
    assert (await stack.providers.get(stack.admin, main.id)).fallback_provider_id is None
    with pytest.raises(NotFound):
        await stack.providers.get(stack.admin, backup.id)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "a", "kind": "openai", "models": ["m"]}, "needs an API key"),
        ({"name": "a", "kind": "azure", "api_key": KEY}, "needs a base URL"),
        ({"name": "a", "kind": "openai_compatible"}, "needs a base URL"),
        ({"name": "a", "kind": "local", "base_url": "http://127.0.0.1:1"}, "takes no base URL"),
        ({"name": "a", "kind": "openai_compatible", "base_url": "file:///etc/passwd"}, "http:// or https://"),
        (
            {"name": "a", "kind": "openai_compatible", "base_url": "http://x:1", "default_params": {"api_base": "x"}},
            "not allowed",
        ),
    ],
)
async def test_invalid_providers_are_refused_with_the_reason(stack: Stack, fields: dict, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        await stack.providers.create(stack.admin, ProviderInput.model_validate(fields))


def test_unknown_fields_and_kinds_are_refused() -> None:
    with pytest.raises(InvalidInput, match="kind"):
        parse_input(ProviderInput, {"name": "a", "kind": "bedrock"})
    with pytest.raises(InvalidInput, match="api_base"):
        parse_input(ProviderInput, {"name": "a", "kind": "openai", "api_base": "http://evil"})


async def test_names_are_unique_and_fallbacks_cannot_loop(stack: Stack) -> None:
    first = await stack.add_provider(name="one", base_url="http://127.0.0.1:9/v1")
    second = await stack.add_provider(name="two", base_url="http://127.0.0.1:9/v1", fallback_provider_id=str(first.id))
    with pytest.raises(Conflict, match="exists already"):
        await stack.add_provider(name="one", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InvalidInput, match="cannot fall back to itself"):
        await stack.providers.update(stack.admin, first.id, ProviderFields(fallback_provider_id=second.id))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://localhost:11434",
        "http://10.1.2.3/v1",
        "http://192.168.0.10/v1",
        "http://169.254.169.254/latest",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://0.0.0.0:80",
    ],
)
async def test_private_endpoints_are_refused_unless_the_operator_allows_them(db: Database, url: str) -> None:
    stack = await make_stack(db, allow_private=False)
    with pytest.raises(UnsafeEndpoint, match="non-public address"):
        await stack.add_provider(name="inside", base_url=url)
    assert [p.kind for p in await stack.providers.list(stack.admin)] == [ProviderKind.LOCAL]


async def test_public_endpoints_pass_the_guard(db: Database) -> None:
    stack = await make_stack(db, allow_private=False)
    view = await stack.add_provider(name="public", base_url="https://8.8.8.8/v1")
    assert view.base_url == "https://8.8.8.8/v1"
