"""The family's consent decides who gets texts, in which language, or that nobody does: end to end
from a screening's referrals through the notice job, and `choose_recipient` on its own."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from referrals.db import db
from referrals.directory.models import Service
from referrals.jobs import DONE, run_due_jobs
from referrals.loop.from_screening import refer_for_needs
from referrals.loop.models import Referral
from referrals.loop.service import revoke_consent
from referrals.notify.models import Message
from referrals.notify.texts import STEPS, Contact, Skip, choose_recipient
from referrals.patients.models import Consent, Need, Patient
from referrals.patients.screening import complete_screening, save_answers, start_screening
from tests.helpers import World, make_patient, move, years_ago

GUARDIAN_PHONE = "+15105550142"
ALL_STEPS = ",".join(STEPS)
TEEN_PHONE = "+15105550177"
FOOD = {"q-88122-7": "LA28397-0"}
UNSAFE = {  # safety total 11
    "q-95618-5": "LA6482-9",
    "q-95617-7": "LA10066-1",
    "q-95616-9": "LA10066-1",
    "q-95615-1": "LA10066-1",
}
# Words that would tell a reader of the phone what the referral is about.
REVEALING = (
    "youth",
    "counsel",
    "confidential",
    "partner",
    "violence",
    "safety",
    "abuse",
    "sunrise",
    "pediatrics",
)


def messages() -> list[Message]:
    db.session.remove()
    return list(db.session().scalars(select(Message).order_by(Message.created_at)))


def screened(world: World, patient: Patient, answers: dict, respondent: str) -> tuple:
    actor = world.actor("clinician")
    screening = start_screening(
        actor, patient.id, {"instrument": "ahc-hrsn", "respondent": respondent}
    )
    save_answers(actor, screening.id, answers, rest_negative=True)
    complete_screening(actor, screening.id, {})
    db.session.remove()
    [need] = db.session().scalars(select(Need).where(Need.screening_id == screening.id))
    return screening.id, need.id


def refer(world, patient, service: str, answers=FOOD, respondent=None, **fields) -> Referral:
    respondent = respondent or f"guardian:{patient.guardians[0].id}"
    screening_id, need_id = screened(world, patient, answers, respondent)
    form = MultiDict(
        {
            f"need-{need_id}": "help-now",
            f"service-{need_id}": str(world.service_ids[service]),
            "consent_by": respondent,
            "consent_method": "verbal",
        }
    )
    for key, value in fields.items():
        form[key] = value
    _, [referral] = refer_for_needs(world.actor("clinician"), screening_id, form)
    return referral


def guardian(patient: Patient) -> str:
    return f"guardian:{patient.guardians[0].id}"


def make_sensitive(world: World, key: str) -> None:
    session = db.session()
    session.get(Service, world.service_ids[key]).sensitive = True
    session.commit()
    db.session.remove()


def test_notice_goes_to_the_consents_phone_in_the_consents_language(world):
    patient = make_patient(world)  # guardian speaks Spanish
    referral = refer(world, patient, "food", sms_to=guardian(patient), consent_language="en")
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {DONE: 2}
    sent = messages()
    assert [(m.status, m.recipient_kind, m.to_phone, m.language) for m in sent] == [
        ("sent", "guardian", GUARDIAN_PHONE, "en"),
        ("sent", "guardian", GUARDIAN_PHONE, "en"),
    ]
    assert sent[0].body == (
        "Referrals: texts about your referrals. Reply STOP to opt out, HELP for help."
        " Community Food Bank has received a referral for you from Sunrise Pediatrics."
        " They will contact you."
    )
    assert sent[1].body == "Community Food Bank accepted your referral and will contact you."
    assert all("food insecurity" not in m.body.lower() for m in sent)


def test_notice_in_spanish_when_the_consent_says_so(world):
    patient = make_patient(world)
    refer(world, patient, "food", sms_to=guardian(patient))  # language: the guardian's
    run_due_jobs()
    [message] = messages()
    assert (message.to_phone, message.language) == (GUARDIAN_PHONE, "es")
    assert message.body.startswith("Referrals: mensajes sobre sus referencias.")
    assert (
        "Community Food Bank ha recibido una referencia para usted de parte de Sunrise Pediatrics."
        in message.body
    )


def test_no_texts_in_the_consent_means_the_notice_is_skipped(world):
    patient = make_patient(world)
    referral = refer(world, patient, "food", sms_to="none")
    move(world, "food", referral, "accept")
    run_due_jobs()
    sent = messages()
    assert len(sent) == 2
    for message in sent:
        assert (message.status, message.recipient_kind, message.to_phone) == (
            "skipped",
            "none",
            None,
        )
        assert message.skip_reason == "The family asked for no text messages about this referral."
        assert message.body == "" and message.sent_at is None and message.provider_id is None


def test_contact_prohibited_sends_nothing_now_or_later(world, app, monkeypatch):
    # Every step would text (in-progress too, which does not by default): none does.
    monkeypatch.setattr(app.config["SETTINGS"], "sms_notify_steps", ALL_STEPS)
    patient = make_patient(world)
    referral = refer(world, patient, "food", sms_to=guardian(patient), contact_prohibited="y")
    assert referral.contact_prohibited
    move(world, "food", referral, "accept")
    move(world, "food", referral, "start")
    run_due_jobs()
    sent = messages()
    assert len(sent) == 3
    assert {(m.status, m.to_phone) for m in sent} == {("skipped", None)}
    assert all("must not be contacted" in m.skip_reason for m in sent)


def test_sensitive_referral_for_an_adolescent_never_texts_a_guardian_nor_names_anything(
    world, app, monkeypatch
):
    monkeypatch.setattr(app.config["SETTINGS"], "sms_notify_steps", ALL_STEPS)
    make_sensitive(world, "youth")
    teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
    referral = refer(world, teen, "youth", UNSAFE, "patient", sms_to="patient")
    assert referral.sensitive
    move(world, "youth", referral, "accept")
    move(world, "youth", referral, "start")
    run_due_jobs()
    sent = messages()
    assert len(sent) == 3
    assert {(m.status, m.recipient_kind, m.to_phone) for m in sent} == {
        ("sent", "patient", TEEN_PHONE)
    }
    # Only the first text introduces us; none names the organisation, the clinic or the need.
    assert [m.body for m in sent] == [
        "Referrals: texts about your referrals. Reply STOP to opt out, HELP for help."
        " You have an update from your care team. Please call them.",
        "You have an update from your care team. Please call them.",
        "You have an update from your care team. Please call them.",
    ]
    for message in sent:
        assert not any(word in message.body.lower() for word in REVEALING)


def test_sensitive_referral_skips_a_teen_phone_that_is_the_familys(world):
    make_sensitive(world, "youth")
    teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
    # Registration refuses it, but older records may hold the family phone as the teen's.
    db.session().get(Patient, teen.id).phone = GUARDIAN_PHONE
    db.session().commit()
    teen = db.session().get(Patient, teen.id)
    refer(world, teen, "youth", UNSAFE, "patient", sms_to="patient")
    run_due_jobs()
    [message] = messages()
    assert (message.status, message.to_phone) == ("skipped", None)
    assert "guardian" in message.skip_reason


def test_a_partner_violence_referral_for_an_adolescent_never_texts_a_guardian(world):
    teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
    screening_id, need_id = screened(world, teen, UNSAFE, "patient")
    form = {
        f"need-{need_id}": "help-now",
        f"service-{need_id}": str(world.service_ids["youth"]),
        "consent_by": "",  # youth is HIPAA-covered
        "sms_to": "patient",
    }
    refer_for_needs(world.actor("clinician"), screening_id, form)
    run_due_jobs()
    [message] = messages()
    assert message.recipient_kind != "guardian" and message.to_phone != GUARDIAN_PHONE
    assert "Youth Counselling" not in message.body


def test_no_texts_is_honoured_without_a_consent(world):
    teen = make_patient(world, birth_date=years_ago(14), phone=TEEN_PHONE, language="en")
    screening_id, need_id = screened(world, teen, UNSAFE, "patient")
    form = {
        f"need-{need_id}": "help-now",
        f"service-{need_id}": str(world.service_ids["youth"]),
        "consent_by": "",
        "sms_to": "none",
    }
    refer_for_needs(world.actor("clinician"), screening_id, form)
    run_due_jobs()
    [message] = messages()
    assert message.status == "skipped" and message.to_phone is None


def test_revoking_the_consent_stops_later_notices(world):
    patient = make_patient(world)
    referral = refer(world, patient, "food", sms_to=guardian(patient))
    referral_id = referral.id
    run_due_jobs()
    consent_id = db.session().scalar(select(Consent.id))
    revoke_consent(world.actor("clinician"), consent_id, "Mother asked us to stop")
    move(world, "food", referral_id, "accept")
    run_due_jobs()
    sent = messages()
    assert [(m.status, m.to_phone) for m in sent] == [
        ("sent", GUARDIAN_PHONE),
        ("skipped", None),
    ]
    assert sent[1].skip_reason == "The family withdrew its consent to share."


class TestChooseRecipient:
    pytestmark = pytest.mark.pure

    TODAY = date(2025, 3, 15)
    CHILD = date(2016, 1, 1)  # 9
    TEEN = date(2011, 1, 1)  # 14
    PATIENT = "+14155550100"
    MOTHER = "+14155550111"
    FATHER = "+14155550122"

    def choose(self, **overrides):
        args = {
            "birth_date": self.CHILD,
            "today": self.TODAY,
            "patient_phone": None,
            "patient_language": "en",
            "guardians": [(self.MOTHER, "es"), (self.FATHER, "en")],
            "sensitive": False,
            "contact_prohibited": False,
            "opted_in": True,
        }
        args.update(overrides)
        return choose_recipient(**args)

    def test_defaults_keep_the_old_rules(self):
        assert self.choose() == Contact("guardian", self.MOTHER, "es")

    def test_consented_number_wins_over_the_first_guardian(self):
        assert self.choose(chosen_phone=self.FATHER) == Contact("guardian", self.FATHER, "en")

    def test_consent_language_wins_over_the_guardians(self):
        assert self.choose(chosen_phone=self.MOTHER, chosen_language="en") == Contact(
            "guardian", self.MOTHER, "en"
        )

    def test_consented_patient_number(self):
        got = self.choose(
            birth_date=self.TEEN, patient_phone=self.PATIENT, chosen_phone=self.PATIENT
        )
        assert got == Contact("patient", self.PATIENT, "en")

    def test_texts_not_allowed_is_a_skip_whatever_the_phone(self):
        got = self.choose(texts_allowed=False, chosen_phone=self.MOTHER)
        assert got == Skip("The family asked for no text messages about this referral.")

    def test_prohibited_contact_comes_first(self):
        got = self.choose(contact_prohibited=True, texts_allowed=False, chosen_phone=self.MOTHER)
        assert isinstance(got, Skip) and "must not be contacted" in got.reason

    def test_opted_out_comes_before_consent(self):
        got = self.choose(opted_in=False, chosen_phone=self.MOTHER)
        assert got == Skip("The family opted out of text messages.")

    def test_sensitive_never_goes_to_a_consented_guardian_number(self):
        got = self.choose(
            birth_date=self.TEEN,
            patient_phone=self.PATIENT,
            sensitive=True,
            chosen_phone=self.FATHER,
        )
        assert got == Skip("Confidential referral: the chosen number is a guardian's.")

    def test_sensitive_to_the_teens_consented_number(self):
        got = self.choose(
            birth_date=self.TEEN,
            patient_phone=self.PATIENT,
            sensitive=True,
            chosen_phone=self.PATIENT,
            chosen_language="es",
        )
        assert got == Contact("patient", self.PATIENT, "es")

    def test_sensitive_teen_number_shared_with_a_guardian_is_skipped(self):
        got = self.choose(
            birth_date=self.TEEN,
            patient_phone=self.MOTHER,
            sensitive=True,
            chosen_phone=self.MOTHER,
        )
        assert isinstance(got, Skip)

    def test_no_consent_phone_and_no_phone_on_file(self):
        got = self.choose(guardians=[(None, "es")], chosen_phone=None)
        assert got == Skip("No phone number on file.")
