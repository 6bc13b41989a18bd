"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from referrals.audit import AuditEvent
from referrals.auth.models import Membership, Organization, User
from referrals.db import Base
from referrals.directory.models import (
    Address,
    Attribute,
    Contact,
    CostOption,
    Language,
    Location,
    Phone,
    Program,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    Taxonomy,
    TaxonomySdohMap,
    TaxonomyTerm,
)
from referrals.directory.search import SearchHours, SearchRow  # noqa: F401 (search tables)
from referrals.exchange.models import ExchangeLink, ExchangePeer, PeerOrganization
from referrals.fhir.oauth import ApiClient, ApiToken, UsedAssertion
from referrals.fhir.subscriptions import FhirSubscription
from referrals.identifiers import PartnerIdentifier
from referrals.jobs import Job, Worker
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.notify.models import InboundMessage, Message, SmsNumber, SmsSender
from referrals.patients.models import (
    Consent,
    Guardian,
    Need,
    Patient,
    Screening,
    ScreeningObservation,
)

__all__ = [
    "Address",
    "ApiClient",
    "ApiToken",
    "Attribute",
    "AuditEvent",
    "Base",
    "Consent",
    "Contact",
    "CostOption",
    "ExchangeLink",
    "ExchangePeer",
    "FhirSubscription",
    "Guardian",
    "InboundMessage",
    "Job",
    "Language",
    "Location",
    "Membership",
    "Message",
    "Need",
    "Organization",
    "PartnerIdentifier",
    "Patient",
    "PeerOrganization",
    "Phone",
    "Program",
    "Referral",
    "ReferralEvent",
    "Schedule",
    "Screening",
    "ScreeningObservation",
    "Service",
    "ServiceArea",
    "ServiceAtLocation",
    "SmsNumber",
    "SmsSender",
    "Task",
    "Taxonomy",
    "TaxonomySdohMap",
    "TaxonomyTerm",
    "UsedAssertion",
    "User",
    "Worker",
]
