"""Synthetic demo data, written through the services like any other data. No real people."""

from __future__ import annotations

from sqlalchemy import func, select

from referrals.auth.actor import Actor
from referrals.auth.models import Membership, Organization, User
from referrals.auth.service import actor_for, create_user
from referrals.db import db, transaction
from referrals.directory.service import add_service, register_organization
from referrals.directory.taxonomy_map import seed_taxonomy_map
from referrals.loop.service import change_referral, send_referral
from referrals.patients.screening import complete_screening, save_answers, start_screening
from referrals.patients.service import register_patient
from referrals.terminology import california_today

DEMO_PASSWORD = "demo-referrals-2026"
CLINIC = "Sunrise Pediatrics"
FOOD = "Alameda Community Food Bank"
HOUSING = "Bay Area Housing Help"
SCHOOL = "Oak Valley Unified Family Resource Center"
RIDES = "Eastbay Rides"
YOUTH = "Safe Harbor Youth Services"
NETWORK = "East Bay Referral Network"

ORGANIZATIONS = [
    (CLINIC, "clinic", True, "+15105550100"),
    (FOOD, "cbo", False, "+15105550110"),
    (HOUSING, "cbo", False, "+15105550120"),
    (SCHOOL, "school", False, "+15105550130"),
    (RIDES, "cbo", False, "+15105550140"),
    (YOUTH, "cbo", True, "+15105550150"),
    (NETWORK, "network", False, None),
]

DEMO_USERS = [
    ("dr.rivera@sunrise.example", "Dr. Elena Rivera", CLINIC, "clinician"),
    ("intake@foodbank.example", "Marcus Lee", FOOD, "cbo_staff"),
    ("manager@foodbank.example", "Rosa Alvarez", FOOD, "org_admin"),
    ("casework@housinghelp.example", "Priya Shah", HOUSING, "cbo_staff"),
    ("frc@oakvalley.example", "Tomás Reyes", SCHOOL, "school_staff"),
    ("dispatch@eastbayrides.example", "Dana Brooks", RIDES, "cbo_staff"),
    ("counselor@safeharbor.example", "Jamie Chen", YOUTH, "cbo_staff"),
    ("admin@network.example", "Morgan Ellis", NETWORK, "network_admin"),
]

SERVICES = [
    (
        FOOD,
        dict(
            name="Emergency food boxes and CalFresh application help",
            description="Weekly food boxes for families and help applying for CalFresh.",
            categories=["food-insecurity"],
            service_code="710925007",
            service_display="Provision of food",
            procedure_codes=[
                {"code": "710925007", "display": "Provision of food"},
                {
                    "code": "467771000124109",
                    "display": "Assistance with application for food pantry program",
                },
            ],
            languages=["en", "es", "zh"],
            address={"address_1": "1200 Harbor Way", "city": "Oakland", "postal_code": "94607"},
            phone="+15105550111",
        ),
    ),
    (
        HOUSING,
        dict(
            name="Family housing navigation",
            description="Rental assistance, eviction prevention and shelter placement for families.",
            categories=["housing-instability", "homelessness", "inadequate-housing"],
            service_code="710911006",
            service_display="Referral to housing service",
            procedure_codes=[
                {"code": "710911006", "display": "Referral to housing service"},
                {"code": "410606002", "display": "Social service procedure"},
            ],
            languages=["en", "es", "vi"],
            address={"address_1": "55 Grand Ave", "city": "Oakland", "postal_code": "94612"},
            phone="+15105550121",
        ),
    ),
    (
        SCHOOL,
        dict(
            name="Family resource center",
            description="School-based help with food, clothing, utilities and after-school programmes.",
            categories=[
                "food-insecurity",
                "utility-insecurity",
                "social-connection",
                "educational-attainment",
            ],
            service_code="410606002",
            service_display="Social service procedure",
            procedure_codes=[{"code": "410606002", "display": "Social service procedure"}],
            languages=["en", "es"],
            minimum_age=4,
            maximum_age=18,
            address={"address_1": "300 School St", "city": "Oakland", "postal_code": "94601"},
            phone="+15105550131",
        ),
    ),
    (
        RIDES,
        dict(
            name="Rides to medical appointments",
            description="Free door-to-door rides to medical and dental appointments.",
            categories=["transportation-insecurity"],
            service_code="428632005",
            service_display="Transportation request",
            procedure_codes=[{"code": "428632005", "display": "Transportation request"}],
            languages=["en", "es", "tl"],
            address={"address_1": "9 Fruitvale Ave", "city": "Oakland", "postal_code": "94601"},
            phone="+15105550141",
        ),
    ),
    (
        YOUTH,
        dict(
            name="Confidential youth counselling",
            description="Confidential counselling for teens, including relationship safety.",
            categories=["stress", "intimate-partner-violence", "social-connection"],
            service_code="409063005",
            service_display="Counseling",
            procedure_codes=[{"code": "409063005", "display": "Counseling"}],
            languages=["en", "es"],
            minimum_age=12,
            maximum_age=24,
            address={
                "address_1": "18 Lake Merritt Blvd",
                "city": "Oakland",
                "postal_code": "94610",
            },
            phone="+15105550151",
        ),
    ),
]

PATIENTS = [
    dict(
        given_name="Maya",
        family_name="Lopez",
        birth_date="2017-03-14",
        gender="female",
        language="es",
        zip_code="94601",
        mrn="SP-10021",
        guardian_name="Ana Lopez",
        guardian_relationship="mother",
        guardian_phone="+15105550142",
        guardian_language="es",
    ),
    dict(
        given_name="Ethan",
        family_name="Nguyen",
        birth_date="2020-11-30",
        gender="male",
        language="vi",
        zip_code="94606",
        mrn="SP-10022",
        guardian_name="Linh Nguyen",
        guardian_relationship="mother",
        guardian_phone="+14155550123",
        guardian_language="vi",
    ),
    dict(
        given_name="Jordan",
        family_name="Kim",
        birth_date="2010-06-02",
        gender="other",
        phone="+15105550177",
        language="en",
        zip_code="94610",
        mrn="SP-10023",
        guardian_name="Min Kim",
        guardian_relationship="father",
        guardian_phone="+15105550178",
        guardian_language="ko",
    ),
    dict(
        given_name="Sofia",
        family_name="Martinez",
        birth_date="2007-01-20",
        gender="female",
        phone="+15105550190",
        language="es",
        zip_code="94603",
        mrn="SP-10024",
    ),
]


def _actor(email: str) -> Actor:
    session = db.session()
    user = session.scalar(select(User).where(User.email == email))
    assert user is not None
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
    return actor_for(user, membership, "127.0.0.1")


def seed(*, if_empty: bool = False) -> bool:
    """Write the demo data; with `if_empty`, only into a database without organisations."""
    session = db.session()
    if if_empty and session.scalar(select(func.count(Organization.id))):
        return False
    system = Actor.system("demo seed")
    orgs = {
        name: register_organization(
            system, name=name, kind=kind, hipaa_covered=covered, phone=phone
        )
        for name, kind, covered, phone in ORGANIZATIONS
    }
    for email, name, org, role in DEMO_USERS:
        create_user(system, email=email, name=name, password=DEMO_PASSWORD, org_name=org, role=role)
    services = {org: add_service(system, orgs[org], **fields) for org, fields in SERVICES}
    with transaction() as session:
        seed_taxonomy_map(session)  # 211 and Open Eligibility terms -> SDOH domains
    clinician = _actor("dr.rivera@sunrise.example")
    patients = {p["given_name"]: register_patient(clinician, p) for p in PATIENTS}
    today = california_today().isoformat()

    def refer(patient: str, org: str, note: str, giver: str, giver_name: str, **extra: str):
        form = {
            "service_id": str(services[org].id),
            "note": note,
            "consent_given_by": giver,
            "consent_given_by_name": giver_name,
            "consent_method": "verbal",
            "consent_date": today,
            **extra,
        }
        return send_referral(clinician, patients[patient].id, form)

    refer(
        "Maya",
        FOOD,
        "Family screened positive on the Hunger Vital Sign; mother prefers Spanish and afternoons.",
        "guardian",
        "Ana Lopez",
    )
    housing = refer(
        "Ethan",
        HOUSING,
        "Family received an eviction notice last week.",
        "guardian",
        "Linh Nguyen",
        priority="urgent",
    )
    youth = refer(
        "Jordan",
        YOUTH,
        "Teen asked for confidential counselling.",
        "patient",
        "Jordan Kim",
        sensitive="y",
        category="stress",
    )
    refer(
        "Sofia",
        RIDES,
        "Needs rides to prenatal appointments at the clinic.",
        "patient",
        "Sofia Martinez",
    )
    # Ethan's mother answered the Hunger Vital Sign: food insecurity, still to confirm.
    ethan = patients["Ethan"]
    screening = start_screening(
        clinician,
        ethan.id,
        {"instrument": "hvs", "respondent": f"guardian:{ethan.guardians[0].id}"},
    )
    save_answers(clinician, screening.id, {"q-88122-7": "LA6729-3", "q-88123-5": "LA28398-8"})
    complete_screening(clinician, screening.id, {})
    caseworker = _actor("casework@housinghelp.example")
    change_referral(caseworker, housing.id, {"action": "accept", "version": "1"})
    counselor = _actor("counselor@safeharbor.example")
    change_referral(counselor, youth.id, {"action": "accept", "version": "1"})
    change_referral(counselor, youth.id, {"action": "start", "version": "2"})
    change_referral(
        counselor,
        youth.id,
        {
            "action": "note",
            "version": "3",
            "business_status": "appointment-scheduled",
            "note": "First session booked.",
        },
    )
    return True
