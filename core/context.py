"""Who is asking, for which tenant: carried by every service call; one `require` for roles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from core.errors import PermissionDenied


class Role(StrEnum):
    """Roles, weakest first; each includes what the ones before it may do."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The tenant a call acts on, the user making it and their role there."""

    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID | None
    role: Role

    def require(self, needed: Role, action: str = "do this") -> None:
        """Raise `PermissionDenied` unless the caller's role is at least `needed`."""
        if self.role.rank < needed.rank:
            raise PermissionDenied(f"your role '{self.role}' cannot {action}; it needs '{needed}' or higher")
