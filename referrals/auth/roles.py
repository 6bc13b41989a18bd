"""Roles, organisation kinds and what each role may do. Pure: defined once, imported everywhere."""

from __future__ import annotations

from enum import StrEnum


class OrgKind(StrEnum):
    CLINIC = "clinic"
    CBO = "cbo"
    SCHOOL = "school"
    NETWORK = "network"
    # The health information exchange, sending referrals as an intermediary (machine clients
    # only: it has no people here).
    EXCHANGE = "exchange"


class Role(StrEnum):
    CLINICIAN = "clinician"
    CBO_STAFF = "cbo_staff"
    SCHOOL_STAFF = "school_staff"
    ORG_ADMIN = "org_admin"
    NETWORK_ADMIN = "network_admin"


ROLE_LABELS = {
    Role.CLINICIAN: "Clinician",
    Role.CBO_STAFF: "CBO staff",
    Role.SCHOOL_STAFF: "School staff",
    Role.ORG_ADMIN: "Organisation admin",
    Role.NETWORK_ADMIN: "Network admin",
}

ORG_KIND_LABELS = {
    OrgKind.CLINIC: "Clinic",
    OrgKind.CBO: "Community-based organisation",
    OrgKind.SCHOOL: "School",
    OrgKind.NETWORK: "Network",
    OrgKind.EXCHANGE: "Health information exchange",
}

# Which roles make sense in which kind of organisation.
ROLES_BY_ORG_KIND = {
    OrgKind.CLINIC: {Role.CLINICIAN, Role.ORG_ADMIN},
    OrgKind.CBO: {Role.CBO_STAFF, Role.ORG_ADMIN},
    OrgKind.SCHOOL: {Role.SCHOOL_STAFF, Role.ORG_ADMIN},
    OrgKind.NETWORK: {Role.NETWORK_ADMIN},
    OrgKind.EXCHANGE: set(),
}


class Permission(StrEnum):
    SEND_REFERRALS = "send_referrals"  # register patients, record consent, refer
    WORK_REFERRALS = "work_referrals"  # accept, decline and update referrals received
    VIEW_NETWORK = "view_network"  # audit trail, messages, jobs, metrics; no clinical notes
    MANAGE_LISTINGS = "manage_listings"  # edit the organisation's directory entries, capacity


def permissions_for(role: Role, org_kind: OrgKind) -> frozenset[Permission]:
    """What a member with this role in this kind of organisation may do."""
    if role is Role.NETWORK_ADMIN:
        return frozenset({Permission.VIEW_NETWORK})
    if role is Role.CLINICIAN:
        return frozenset({Permission.SEND_REFERRALS})
    if role in {Role.CBO_STAFF, Role.SCHOOL_STAFF}:
        return frozenset({Permission.WORK_REFERRALS})
    if role is Role.ORG_ADMIN:
        if org_kind is OrgKind.CLINIC:
            return frozenset({Permission.SEND_REFERRALS})
        if org_kind in {OrgKind.CBO, OrgKind.SCHOOL}:
            return frozenset({Permission.WORK_REFERRALS, Permission.MANAGE_LISTINGS})
    return frozenset()
