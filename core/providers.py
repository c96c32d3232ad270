"""LLM provider records per tenant: add, edit, disable, delete, list; credentials sealed at rest.

Admins manage providers; every member may list them. Views carry a masked hint of
the key (`sk-...9f2c`), never the key: the decrypted key exists only in the
`ResolvedProvider` handed to the LLM path (`resolve`).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.context import Role, TenantContext
from core.crypto import CredentialVault, Sealed, mask_secret
from core.errors import Conflict, InvalidInput, NotFound
from core.llm.ssrf import EndpointGuard
from core.llm.types import PASSTHROUGH_PARAMS, ProviderKind, ResolvedProvider
from core.text import MAX_LENGTH, JsonObject, Line, text_problem
from db.database import Database
from db.models import Provider

_M = TypeVar("_M", bound=BaseModel)
#: The largest per-minute limit a provider may set (the columns are 32-bit integers).
MAX_RATE = 1_000_000_000

NEEDS_BASE_URL = frozenset({ProviderKind.AZURE, ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OLLAMA})
NEEDS_KEY = frozenset({ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.AZURE})
KIND_LABELS = {
    ProviderKind.OPENAI: "OpenAI",
    ProviderKind.ANTHROPIC: "Anthropic",
    ProviderKind.AZURE: "Azure OpenAI",
    ProviderKind.OLLAMA: "Ollama",
    ProviderKind.OPENAI_COMPATIBLE: "OpenAI-compatible (vLLM, ...)",
    ProviderKind.LOCAL: "Local model (bundled SmolLM2-135M)",
}
LOCAL_NOTE = "SmolLM2-135M runs on this server: tiny, answers simple prompts, and cannot use tools."


MAX_MODELS = 100
MAX_MODEL_ID = 200


def _model_id(value: str) -> str:
    problem = text_problem(value, "line", max_length=MAX_MODEL_ID)
    if problem is not None:
        raise ValueError(problem)
    return value


#: A model id as providers name them (`gpt-4o-mini`, `meta-llama/Llama-3.1-8B-Instruct`).
ModelId = Annotated[str, StringConstraints(max_length=MAX_MODEL_ID), AfterValidator(_model_id)]


def _provider_name(value: str) -> str:
    problem = text_problem(value, "name")
    if problem is not None:
        raise ValueError(problem)
    return value


#: A provider's name: one line people read (`core.text.Name`), never empty.
ProviderName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LENGTH["name"]), AfterValidator(_provider_name)
]


def _printable_key(value: SecretStr) -> SecretStr:
    problem = text_problem(value.get_secret_value(), "secret")
    if problem is not None:
        raise ValueError(f"the key {problem}")  # says where and what kind of character, never the key
    return value


def _finite(value: dict[str, Any]) -> dict[str, Any]:
    # Python's JSON decoder takes NaN and Infinity, which are not JSON: PostgreSQL's json type refuses them.
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("holds NaN or Infinity, which JSON does not have; send a finite number")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value


#: Parameters sent with every call (temperature, top_p, ...): checked JSON, finite numbers only.
DefaultParams = Annotated[JsonObject, AfterValidator(_finite)]


#: An API key: any printable text, never a control character; never shown back.
ApiKey = Annotated[SecretStr, AfterValidator(_printable_key)]


class ProviderFields(BaseModel):
    """What an admin may set on a provider (every field optional: used for edits)."""

    model_config = ConfigDict(extra="forbid")

    name: ProviderName | None = None
    models: Annotated[list[ModelId], Field(max_length=MAX_MODELS)] | None = Field(
        default=None, description=f"Model ids this provider offers (at most {MAX_MODELS}); the first is the default."
    )
    base_url: Line | None = Field(default=None, description="The endpoint (Azure, Ollama, OpenAI-compatible).")
    api_key: ApiKey | None = Field(default=None, description="Stored encrypted; answers show a masked hint only.")
    clear_api_key: bool = False
    default_params: DefaultParams | None = None
    fallback_provider_id: uuid.UUID | None = None
    clear_fallback: bool = False
    enabled: bool | None = None
    rpm_limit: int | None = Field(default=None, ge=0, le=MAX_RATE, description="Requests per minute; 0: no limit.")
    tpm_limit: int | None = Field(default=None, ge=0, le=MAX_RATE, description="Tokens per minute; 0: no limit.")


class ProviderInput(ProviderFields):
    """A new provider: `name` and `kind` are required."""

    name: ProviderName
    kind: ProviderKind


@dataclass(frozen=True, slots=True)
class ProviderView:
    """A provider as the UI and API show it: no key, only its hint."""

    id: uuid.UUID
    name: str
    kind: ProviderKind
    models: list[str]
    base_url: str | None
    default_params: dict[str, Any]
    credential_hint: str
    has_credential: bool
    fallback_provider_id: uuid.UUID | None
    enabled: bool
    rpm_limit: int | None
    tpm_limit: int | None
    created_at: datetime
    updated_at: datetime


def _view(row: Provider) -> ProviderView:
    return ProviderView(
        id=row.id,
        name=row.name,
        kind=ProviderKind(row.kind),
        models=list(row.models or []),
        base_url=row.base_url,
        default_params=dict(row.default_params or {}),
        credential_hint=row.credential_hint,
        has_credential=row.credential_ciphertext is not None,
        fallback_provider_id=row.fallback_provider_id,
        enabled=row.enabled,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def parse_input(model: type[_M], data: dict[str, Any]) -> _M:
    """Validate user data into `model`, turning pydantic's errors into one `InvalidInput`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, "provider") from None


class ProviderService:
    """Provider records of a tenant; also the `ProviderResolver` of `LLMService`.

    Resolved providers (key decrypted) and each tenant's default are cached for `cache_ttl_s`
    so an LLM call does not read and decrypt on every request. A change made through this
    service drops the tenant's entries at once; a change made by another app replica is
    seen after at most `cache_ttl_s`.
    """

    def __init__(
        self, db: Database, vault: CredentialVault, guard: EndpointGuard, *, cache_ttl_s: float = 10.0
    ) -> None:
        self._db = db
        self._vault = vault
        self._guard = guard
        self._ttl = cache_ttl_s
        self._resolved: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, ResolvedProvider]] = {}
        self._defaults: dict[uuid.UUID, tuple[float, uuid.UUID]] = {}

    def forget(self, tenant_id: uuid.UUID) -> None:
        """Drop what is cached for a tenant (after its providers changed)."""
        self._defaults.pop(tenant_id, None)
        for key in [key for key in self._resolved if key[0] == tenant_id]:
            del self._resolved[key]

    async def list(self, ctx: TenantContext) -> list[ProviderView]:
        """Every provider of the tenant, by name (any member)."""
        ctx.require(Role.VIEWER, "list providers")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return [_view(r) for r in await session.scalars(select(Provider).order_by(Provider.name))]

    async def get(self, ctx: TenantContext, provider_id: uuid.UUID) -> ProviderView:
        ctx.require(Role.VIEWER, "view providers")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return _view(await self._row(session, provider_id))

    async def create(self, ctx: TenantContext, data: ProviderInput) -> ProviderView:
        """Add a provider (admins)."""
        ctx.require(Role.ADMIN, "add providers")
        row = Provider(id=uuid.uuid4(), name=data.name.strip(), kind=str(data.kind), enabled=True)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await self._apply(ctx, session, row, data)
            session.add(row)
            await self._commit(session, row.name)
            self.forget(ctx.tenant_id)
            return _view(row)

    async def update(self, ctx: TenantContext, provider_id: uuid.UUID, data: ProviderFields) -> ProviderView:
        """Change some fields of a provider (admins); an omitted key keeps the stored one."""
        ctx.require(Role.ADMIN, "edit providers")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await self._row(session, provider_id)
            if data.name is not None:
                row.name = data.name.strip()
            await self._apply(ctx, session, row, data)
            await self._commit(session, row.name)
            self.forget(ctx.tenant_id)
            return _view(row)

    async def set_enabled(self, ctx: TenantContext, provider_id: uuid.UUID, enabled: bool) -> ProviderView:
        """Enable or disable a provider (admins); a disabled provider is skipped by calls."""
        return await self.update(ctx, provider_id, ProviderFields(enabled=enabled))

    async def delete(self, ctx: TenantContext, provider_id: uuid.UUID) -> None:
        """Delete a provider (admins); providers falling back to it lose their fallback."""
        ctx.require(Role.ADMIN, "delete providers")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await self._row(session, provider_id)
            await session.delete(row)
            await session.commit()
        self.forget(ctx.tenant_id)

    # -- the LLM path ------------------------------------------------------------------

    async def resolve(self, ctx: TenantContext, provider_id: uuid.UUID) -> ResolvedProvider:
        """The provider with its key decrypted, for `LLMService` only (never shown); cached, see the class."""
        key = (ctx.tenant_id, provider_id)
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        resolved = await self._resolve(ctx, provider_id)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[key] = (time.monotonic() + self._ttl, resolved)
        return resolved

    async def _resolve(self, ctx: TenantContext, provider_id: uuid.UUID) -> ResolvedProvider:
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await self._row(session, provider_id)
        api_key = None
        if row.credential_ciphertext is not None and row.credential_key_id is not None:
            sealed = Sealed(row.credential_key_id, row.credential_ciphertext)
            api_key = await self._vault.decrypt(ctx.tenant_slug, ctx.tenant_id, row.id, sealed)
        return ResolvedProvider(
            id=row.id,
            name=row.name,
            kind=ProviderKind(row.kind),
            base_url=row.base_url,
            models=list(row.models or []),
            default_params=dict(row.default_params or {}),
            api_key=api_key,
            fallback_id=row.fallback_provider_id,
            enabled=row.enabled,
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
        )

    async def default_provider_id(self, ctx: TenantContext) -> uuid.UUID:
        """The tenant's oldest enabled provider (the bundled local model on a new tenant); cached."""
        cached = self._defaults.get(ctx.tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            found = await session.scalar(
                select(Provider.id).where(Provider.enabled.is_(True)).order_by(Provider.created_at, Provider.name)
            )
        if found is None:
            raise NotFound("this workspace has no enabled LLM provider; add one on the Providers page")
        self._defaults[ctx.tenant_id] = (time.monotonic() + self._ttl, found)
        return found

    # -- helpers -----------------------------------------------------------------------

    async def _row(self, session: Any, provider_id: uuid.UUID) -> Provider:
        row: Provider | None = await session.get(Provider, provider_id)
        if row is None:
            raise NotFound(f"no provider with id {provider_id} in this workspace")
        return row

    async def _commit(self, session: Any, name: str) -> None:
        try:
            await session.commit()
        except IntegrityError as exc:
            raise Conflict(f"a provider named {name!r} exists already; choose another name") from exc

    async def _apply(self, ctx: TenantContext, session: Any, row: Provider, data: ProviderFields) -> None:
        """Validate `data` against the provider's kind and copy it onto `row`."""
        kind = ProviderKind(row.kind)
        if data.models is not None:
            row.models = [m.strip() for m in data.models if m.strip()]
        if data.base_url is not None:
            row.base_url = data.base_url.strip().rstrip("/") or None
        if data.default_params is not None:
            allowed = PASSTHROUGH_PARAMS | ({"api_version"} if kind is ProviderKind.AZURE else set())
            unknown = sorted(set(data.default_params) - allowed)
            if unknown:
                raise InvalidInput(
                    f"default parameter(s) {', '.join(unknown)} are not allowed; use: {', '.join(sorted(allowed))}"
                )
            row.default_params = dict(data.default_params)
        if data.enabled is not None:
            row.enabled = data.enabled
        if data.rpm_limit is not None:
            row.rpm_limit = data.rpm_limit or None
        if data.tpm_limit is not None:
            row.tpm_limit = data.tpm_limit or None
        if kind is ProviderKind.LOCAL:
            if row.base_url or data.api_key:
                raise InvalidInput("the local model runs in this server: it takes no base URL and no key")
        elif kind in NEEDS_BASE_URL and not row.base_url:
            raise InvalidInput(f"a {KIND_LABELS[kind]} provider needs a base URL")
        if row.base_url:
            await self._guard.check(row.base_url)
        if data.clear_api_key:
            row.credential_ciphertext, row.credential_key_id, row.credential_hint = None, None, ""
        if data.api_key is not None and data.api_key.get_secret_value().strip():
            secret = data.api_key.get_secret_value().strip()
            sealed = await self._vault.encrypt(ctx.tenant_slug, ctx.tenant_id, row.id, secret)
            row.credential_ciphertext, row.credential_key_id = sealed.ciphertext, sealed.key_id
            row.credential_hint = mask_secret(secret)
        if kind in NEEDS_KEY and row.credential_ciphertext is None:
            raise InvalidInput(f"a {KIND_LABELS[kind]} provider needs an API key")
        if data.clear_fallback:
            row.fallback_provider_id = None
        elif data.fallback_provider_id is not None:
            await self._check_fallback(session, row.id, data.fallback_provider_id)
            row.fallback_provider_id = data.fallback_provider_id

    async def _check_fallback(self, session: Any, provider_id: uuid.UUID, fallback_id: uuid.UUID) -> None:
        """The fallback must exist here and must not lead back to this provider."""
        current: uuid.UUID | None = fallback_id
        seen: set[uuid.UUID] = set()
        while current is not None and current not in seen:
            if current == provider_id:
                raise InvalidInput("a provider cannot fall back to itself, directly or through others")
            seen.add(current)
            target: Provider | None = await session.get(Provider, current)
            if target is None:
                raise InvalidInput(f"fallback provider {current} does not exist in this workspace")
            current = target.fallback_provider_id
