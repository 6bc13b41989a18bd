"""Who is acting: a person through one membership, or the system itself. Passed to every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from referrals.auth.roles import OrgKind, Permission, Role, permissions_for


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    user_name: str
    org_id: uuid.UUID | None
    org_name: str
    org_kind: OrgKind | None
    role: Role | None
    ip: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(None, name, None, "", None, None)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.role is None or self.org_kind is None:
            return frozenset()
        return permissions_for(self.role, self.org_kind)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
