"""From a finished screening to referrals in one submit: what is written when it can be, and that
nothing at all is written when any part of it cannot."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from referrals.db import db
from referrals.directory.models import Service
from referrals.errors import InvalidInput
from referrals.jobs import Job
from referrals.loop.from_screening import refer_for_needs
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.patients.models import Consent, Need, Patient
from referrals.patients.screening import complete_screening, save_answers, start_screening
from referrals.terminology import CONSENT_SCOPE
from tests.helpers import World, make_patient, years_ago

FOOD_AND_HOUSING = {"q-71802-3": "LA31994-9", "q-88122-7": "LA28397-0"}
FOOD_AND_UTILITIES = {"q-88122-7": "LA28397-0", "q-96779-4": "LA33-6"}
UNSAFE = {  # 5 + 2 + 2 + 2 = 11: intimate-partner-violence
    "q-95618-5": "LA6482-9",
    "q-95617-7": "LA10066-1",
    "q-95616-9": "LA10066-1",
    "q-95615-1": "LA10066-1",
}
SIGNATURE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2"
    "OUAAAAABJRU5ErkJggg=="
)
TEEN_PHONE = "+15105550177"
GUARDIAN_PHONE = "+15105550142"


def screen(
    world: World, patient: Patient, answers: dict, *, finish: bool = True, respondent: str = ""
) -> uuid.UUID:
    respondent = respondent or f"guardian:{patient.guardians[0].id}"
    screening = start_screening(
        world.actor("clinician"), patient.id, {"instrument": "ahc-hrsn", "respondent": respondent}
    )
    save_answers(world.actor("clinician"), screening.id, answers, rest_negative=True)
    if finish:
        complete_screening(world.actor("clinician"), screening.id, {})
    return screening.id


def needs_by_domain(screening_id: uuid.UUID) -> dict[str, uuid.UUID]:
    db.session.remove()
    rows = db.session().scalars(select(Need).where(Need.screening_id == screening_id))
    return {need.domain: need.id for need in rows}


def verifications(screening_id: uuid.UUID) -> set[str]:
    db.session.remove()
    return set(
        db.session().scalars(select(Need.verification).where(Need.screening_id == screening_id))
    )


def counts() -> dict[str, int]:
    db.session.remove()
    session = db.session()
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Referral, Consent, Task, Job, ReferralEvent)
    }


def set_service(world: World, key: str, **attributes: object) -> None:
    session = db.session()
    service = session.get(Service, world.service_ids[key])
    for name, value in attributes.items():
        setattr(service, name, value)
    session.commit()
    db.session.remove()


def guardian(patient: Patient) -> str:
    return f"guardian:{patient.guardians[0].id}"


def consent_fields(patient: Patient, **fields: str) -> dict[str, str]:
    form = {
        "consent_by": guardian(patient),
        "consent_method": "verbal",
        "sms_to": guardian(patient),
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def refer(world: World, screening_id: uuid.UUID, pairs: list[tuple[str, str]], **fields):
    form = MultiDict(pairs)
    for key, value in fields.items():
        form[key] = value
    return refer_for_needs(world.actor("clinician"), screening_id, form)


def picks(needs: dict[str, uuid.UUID], world: World, **chosen: list[str]) -> list:
    """need-<id>=help-now for each need named, and service-<id> for each service key."""
    pairs = []
    for domain, services in chosen.items():
        need_id = needs[domain.replace("_", "-")]
        pairs.append((f"need-{need_id}", "help-now"))
        pairs.extend((f"service-{need_id}", str(world.service_ids[s])) for s in services)
    return pairs


class TestReferrals:
    def test_two_needs_two_referrals_to_two_orgs_each_with_its_consent(self, world):
        patient = make_patient(world)
        screening_id = screen(world, patient, FOOD_AND_HOUSING)
        needs = needs_by_domain(screening_id)
        _, referrals = refer(
            world,
            screening_id,
            picks(needs, world, food_insecurity=["food"], housing_instability=["housing"]),
            **consent_fields(patient),
        )
        assert len(referrals) == 2
        db.session.remove()
        session = db.session()
        rows = session.scalars(select(Referral).where(Referral.patient_id == patient.id)).all()
        by_org = {r.performer_org_id: r for r in rows}
        food, housing = by_org[world.orgs["food"].id], by_org[world.orgs["housing"].id]
        assert (food.need_id, food.category, food.service_id) == (
            needs["food-insecurity"],
            "food-insecurity",
            world.service_ids["food"],
        )
        assert (housing.need_id, housing.category, housing.service_id) == (
            needs["housing-instability"],
            "housing-instability",
            world.service_ids["housing"],
        )
        assert {r.task.status for r in rows} == {"requested"}
        assert all("found by the" in r.note and "wants help with this now" in r.note for r in rows)
        consents = session.scalars(select(Consent).where(Consent.patient_id == patient.id)).all()
        assert len(consents) == 2
        for referral in (food, housing):
            consent = referral.consent
            assert consent.recipient_org_id == referral.performer_org_id
            assert consent.scope == list(CONSENT_SCOPE)
            assert (consent.granted_by, consent.granted_by_name, consent.method) == (
                "guardian",
                "Ana Lopez",
                "verbal",
            )
            assert consent.sms_allowed and consent.sms_phone == GUARDIAN_PHONE
            assert consent.language == "es" and consent.signature is None
            assert consent.screening_id == screening_id
        assert verifications(screening_id) == {"confirmed"}
        assert counts()["Job"] == 2  # one notice per referral

    def test_two_services_for_one_need_two_referrals_one_consent_per_org(self, world):
        patient = make_patient(world)
        screening_id = screen(world, patient, FOOD_AND_UTILITIES)
        needs = needs_by_domain(screening_id)
        _, referrals = refer(
            world,
            screening_id,
            picks(needs, world, food_insecurity=["food", "school"], utility_insecurity=["school"]),
            **consent_fields(patient),
        )
        assert len(referrals) == 3
        db.session.remove()
        rows = db.session().scalars(select(Referral)).all()
        assert sorted((r.service_id == world.service_ids["school"], r.category) for r in rows) == [
            (False, "food-insecurity"),
            (True, "food-insecurity"),
            (True, "utility-insecurity"),
        ]
        consents = db.session().scalars(select(Consent)).all()
        assert sorted(c.recipient_org_id for c in consents) == sorted(
            [world.orgs["food"].id, world.orgs["school"].id]
        )
        school = [r for r in rows if r.service_id == world.service_ids["school"]]
        assert school[0].consent_id == school[1].consent_id is not None

    def test_electronic_consent_keeps_the_signature_and_the_chosen_language(self, world):
        patient = make_patient(world)
        screening_id = screen(world, patient, FOOD_AND_HOUSING)
        needs = needs_by_domain(screening_id)
        refer(
            world,
            screening_id,
            picks(needs, world, food_insecurity=["food"]),
            **consent_fields(
                patient,
                consent_method="electronic",
                signature=SIGNATURE,
                sms_to="none",
                consent_language="en",
                priority="urgent",
                note="Call after 5pm.",
            ),
        )
        consent = db.session().scalar(select(Consent))
        assert (consent.method, consent.signature) == ("electronic", SIGNATURE)
        assert not consent.sms_allowed and consent.sms_phone is None
        assert consent.language == "en"
        referral = db.session().scalar(select(Referral))
        assert (referral.priority, referral.note) == ("urgent", "Call after 5pm.")
        assert needs_by_domain(screening_id)  # the housing need is still there
        assert verifications(screening_id) == {"confirmed", "unconfirmed"}

    def test_decisions_alone_are_saved_and_nothing_is_referred(self, world):
        patient = make_patient(world)
        screening_id = screen(world, patient, FOOD_AND_HOUSING)
        needs = needs_by_domain(screening_id)
        before = counts()
        _, referrals = refer(
            world,
            screening_id,
            [
                (f"need-{needs['food-insecurity']}", "confirmed"),
                (f"need-{needs['housing-instability']}", "dismissed"),
            ],
            **consent_fields(patient),
        )
        assert referrals == []
        assert counts() == before
        rows = db.session().scalars(select(Need).where(Need.screening_id == screening_id))
        assert {(n.domain, n.verification, n.family_priority) for n in rows} == {
            ("food-insecurity", "confirmed", False),
            ("housing-instability", "refuted", False),
        }

    def test_a_hipaa_covered_org_needs_no_consent(self, world):
        teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
        screening_id = screen(world, teen, UNSAFE, respondent="patient")
        needs = needs_by_domain(screening_id)
        assert set(needs) == {"intimate-partner-violence"}
        _, referrals = refer(
            world,
            screening_id,
            picks(needs, world, intimate_partner_violence=["youth"]),
            consent_by="",
            sms_to="patient",
        )
        assert len(referrals) == 1
        referral = db.session().scalar(select(Referral))
        assert referral.consent_id is None
        assert referral.performer_org_id == world.orgs["youth"].id
        assert referral.category == "intimate-partner-violence"
        assert referral.need_id == needs["intimate-partner-violence"]
        assert counts()["Consent"] == 0

    def test_the_adolescent_consents_to_a_sensitive_service_with_texts_to_themselves(self, world):
        set_service(world, "youth", sensitive=True)
        teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
        screening_id = screen(world, teen, UNSAFE, respondent="patient")
        needs = needs_by_domain(screening_id)
        refer(
            world,
            screening_id,
            picks(needs, world, intimate_partner_violence=["youth"]),
            consent_by="patient",
            consent_method="verbal",
            sms_to="patient",
        )
        referral = db.session().scalar(select(Referral))
        assert referral.sensitive
        consent = referral.consent
        assert (consent.granted_by, consent.sms_phone, consent.language) == (
            "patient",
            TEEN_PHONE,
            "en",
        )


def _food_need_form(world, patient, needs, **fields):
    return picks(needs, world, food_insecurity=["food"]), consent_fields(patient, **fields)


REFUSALS = {
    # name: (screen answers, build(world, patient, needs) -> (pairs, fields), field, message)
    "unconfirmed need": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            [(f"service-{n['food-insecurity']}", str(w.service_ids["food"]))],
            consent_fields(p),
        ),
        "service-{food-insecurity}",
        "Confirm food insecurity before referring",
    ),
    "dismissed need": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            [
                (f"need-{n['food-insecurity']}", "dismissed"),
                (f"service-{n['food-insecurity']}", str(w.service_ids["food"])),
            ],
            consent_fields(p),
        ),
        "service-{food-insecurity}",
        "Confirm food insecurity",
    ),
    "no consent for a non-HIPAA org": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            picks(n, w, food_insecurity=["food"], housing_instability=["housing"]),
            {"consent_by": "", "sms_to": "none"},
        ),
        "consent_by",
        "Community Food Bank, Housing Help are not HIPAA-covered entities",
    ),
    "consent without a method": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(w, p, n, consent_method=""),
        "consent_method",
        "How was consent given",
    ),
    "unknown method": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(w, p, n, consent_method="telepathy"),
        "consent_method",
        "Verbal",
    ),
    "electronic without a signature": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(w, p, n, consent_method="electronic"),
        "signature",
        "Have the person sign",
    ),
    "electronic with a signature that is not a PNG data URL": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(
            w, p, n, consent_method="electronic", signature="data:image/svg+xml;base64,PHN2Zz4="
        ),
        "signature",
        "could not be read",
    ),
    "electronic with a signature that is not base64": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(
            w, p, n, consent_method="electronic", signature="data:image/png;base64,<script>"
        ),
        "signature",
        "could not be read",
    ),
    "texts to a person without a phone": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(w, p, n, sms_to="patient"),
        "sms_to",
        "phone number on file",
    ),
    "a 9-year-old consenting": (
        FOOD_AND_HOUSING,
        lambda w, p, n: _food_need_form(w, p, n, consent_by="patient", sms_to="none"),
        "consent_by",
        "a parent or guardian must give the consent",
    ),
    "service at no capacity": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            (set_service(w, "food", capacity_status="no-capacity"), None)[1]
            or _food_need_form(w, p, n)
        ),
        "service-{food-insecurity}",
        "Food boxes is not accepting referrals",
    ),
    "service not accepting electronic referrals": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            (set_service(w, "food", accepts_electronic_referrals=False), None)[1]
            or _food_need_form(w, p, n)
        ),
        "service-{food-insecurity}",
        "Food boxes is not accepting referrals",
    ),
    "service outside the patient's age": (
        UNSAFE,
        lambda w, p, n: (
            picks(n, w, intimate_partner_violence=["youth"]),
            consent_fields(p, sms_to="none"),
        ),
        "service-{intimate-partner-violence}",
        "Confidential counselling serves ages 12–24; the patient is 9.",
    ),
    "service not addressing the need": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (picks(n, w, food_insecurity=["housing"]), consent_fields(p)),
        "service-{food-insecurity}",
        "Housing navigation does not address food insecurity.",
    ),
    "service not in the directory": (
        FOOD_AND_HOUSING,
        lambda w, p, n: (
            [
                (f"need-{n['food-insecurity']}", "help-now"),
                (f"service-{n['food-insecurity']}", str(uuid.uuid4())),
            ],
            consent_fields(p),
        ),
        "service-{food-insecurity}",
        "not in the directory",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_writes_nothing(world, case):
    answers, build, field, message = REFUSALS[case]
    patient = make_patient(world)
    screening_id = screen(world, patient, answers)
    needs = needs_by_domain(screening_id)
    pairs, fields = build(world, patient, needs)
    # A good pick rides along where it can: it must not be sent either.
    if "housing-instability" in needs and case != "no consent for a non-HIPAA org":
        pairs = [
            *pairs,
            (f"need-{needs['housing-instability']}", "help-now"),
            (f"service-{needs['housing-instability']}", str(world.service_ids["housing"])),
        ]
    before = counts()
    with pytest.raises(InvalidInput) as err:
        refer(world, screening_id, pairs, **fields)
    key = field
    for domain, need_id in needs.items():
        key = key.replace(f"{{{domain}}}", str(need_id))
    assert key in err.value.fields, err.value.fields
    assert any(message in m for m in err.value.fields[key]), err.value.fields[key]
    assert counts() == before
    assert verifications(screening_id) == {"unconfirmed"}


def test_consent_by_someone_not_on_file_is_refused(world):
    patient = make_patient(world)
    screening_id = screen(world, patient, FOOD_AND_HOUSING)
    needs = needs_by_domain(screening_id)
    pairs, fields = _food_need_form(world, patient, needs, consent_by=f"guardian:{uuid.uuid4()}")
    before = counts()
    with pytest.raises(InvalidInput) as err:
        refer(world, screening_id, pairs, **fields)
    assert "consent_by" in err.value.fields
    assert counts() == before
    assert verifications(screening_id) == {"unconfirmed"}


def test_consent_by_someone_not_on_file_says_so(world):
    patient = make_patient(world)
    screening_id = screen(world, patient, FOOD_AND_HOUSING)
    needs = needs_by_domain(screening_id)
    pairs, fields = _food_need_form(world, patient, needs, consent_by=f"guardian:{uuid.uuid4()}")
    with pytest.raises(InvalidInput) as err:
        refer(world, screening_id, pairs, **fields)
    assert "Choose the patient or a guardian on file." in err.value.fields["consent_by"]


def test_a_screening_still_in_progress_cannot_refer(world):
    patient = make_patient(world)
    screening_id = screen(world, patient, FOOD_AND_HOUSING, finish=False)
    before = counts()
    with pytest.raises(InvalidInput, match="Finish the screening"):
        refer(world, screening_id, [], **consent_fields(patient))
    assert counts() == before


class TestSensitive:
    def teen_screening(self, world):
        set_service(world, "youth", sensitive=True)
        teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
        screening_id = screen(world, teen, UNSAFE, respondent="patient")
        return teen, screening_id, needs_by_domain(screening_id)

    def test_a_guardian_cannot_consent_to_partner_violence_help_for_a_14_year_old(self, world):
        teen, screening_id, needs = self.teen_screening(world)
        before = counts()
        with pytest.raises(InvalidInput) as err:
            refer(
                world,
                screening_id,
                picks(needs, world, intimate_partner_violence=["youth"]),
                **consent_fields(teen, sms_to="patient"),
            )
        [message] = err.value.fields["consent_by"]
        assert message.startswith("Confidential counselling: ")
        assert "consented to by the adolescent, not a parent or guardian" in message
        assert counts() == before
        assert verifications(screening_id) == {"unconfirmed"}

    def test_texts_to_a_guardian_for_a_sensitive_service_are_refused(self, world):
        teen, screening_id, needs = self.teen_screening(world)
        before = counts()
        with pytest.raises(InvalidInput) as err:
            refer(
                world,
                screening_id,
                picks(needs, world, intimate_partner_violence=["youth"]),
                **consent_fields(teen, consent_by="patient", sms_to=guardian(teen)),
            )
        assert err.value.fields["sms_to"] == [
            "The referral to Confidential counselling is confidential: texts never go to a "
            "parent or guardian."
        ]
        assert "consent_by" not in err.value.fields
        assert counts() == before
        assert verifications(screening_id) == {"unconfirmed"}

    def test_texts_to_a_guardian_for_a_sensitive_service_are_refused_without_consent(self, world):
        teen, screening_id, needs = self.teen_screening(world)
        before = counts()
        with pytest.raises(InvalidInput) as err:
            refer(
                world,
                screening_id,
                picks(needs, world, intimate_partner_violence=["youth"]),
                consent_by="",
                sms_to=guardian(teen),
            )
        assert "sms_to" in err.value.fields
        assert counts() == before


def test_a_teen_consents_alone_to_partner_violence_help_and_the_parent_to_food(world):
    """One submit, two consents: the adolescent's own for the confidential referral, the
    parent's for the other."""
    set_service(world, "youth", sensitive=False)
    teen = make_patient(world, birth_date=years_ago(15), phone=TEEN_PHONE, language="en")
    answers = {**UNSAFE, "q-88122-7": "LA28397-0"}
    screening_id = screen(world, teen, answers, respondent="patient")
    needs = needs_by_domain(screening_id)
    _, referrals = refer(
        world,
        screening_id,
        picks(needs, world, intimate_partner_violence=["youth"], food_insecurity=["food"]),
        **consent_fields(teen, sms_to="patient"),
        own_consent="verbal",
    )
    by_org = {r.performer_org.name: r for r in referrals}
    assert by_org["Youth Counselling Services"].sensitive
    assert by_org["Youth Counselling Services"].consent.granted_by == "patient"
    assert by_org["Community Food Bank"].consent.granted_by == "guardian"
    assert not by_org["Community Food Bank"].sensitive
