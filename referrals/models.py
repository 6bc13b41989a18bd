"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from referrals.audit import AuditEvent
from referrals.auth.models import Membership, Organization, User
from referrals.db import Base
from referrals.directory.models import Service
from referrals.jobs import Job
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.notify.models import Message
from referrals.patients.models import Consent, Guardian, Patient

__all__ = [
    "AuditEvent",
    "Base",
    "Consent",
    "Guardian",
    "Job",
    "Membership",
    "Message",
    "Organization",
    "Patient",
    "Referral",
    "ReferralEvent",
    "Service",
    "Task",
    "User",
]
