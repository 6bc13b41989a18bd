"""Screening use cases one rule at a time: who answers, saving answers, finishing (scores,
observations, needs), deciding on needs, and the audit trail they leave."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.errors import Conflict, InvalidInput, NotFound
from referrals.loop.from_screening import refer_for_needs
from referrals.patients.instruments import AHC_HRSN, PRAPARE
from referrals.patients.models import Need, Screening, ScreeningObservation
from referrals.patients.screening import (
    complete_screening,
    save_answers,
    start_screening,
)
from tests.helpers import World, make_patient, years_ago

SAFETY = ("95618-5", "95617-7", "95616-9", "95615-1")
POINTS = {1: "LA6270-8", 2: "LA10066-1", 3: "LA10082-8", 4: "LA16644-9", 5: "LA6482-9"}


def guardian_value(patient) -> str:
    return f"guardian:{patient.guardians[0].id}"


def start(world: World, patient, who: str = "clinician", **form) -> Screening:
    fields = {"instrument": "ahc-hrsn", "respondent": guardian_value(patient)}
    fields.update(form)
    return start_screening(world.actor(who), patient.id, fields)


def fresh(screening_id: uuid.UUID) -> Screening:
    db.session.remove()
    return db.session().get(Screening, screening_id)


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model)) or 0


def observations(screening_id: uuid.UUID) -> dict[str, ScreeningObservation]:
    rows = db.session().scalars(
        select(ScreeningObservation).where(ScreeningObservation.screening_id == screening_id)
    )
    return {row.code: row for row in rows}


def needs(screening_id: uuid.UUID) -> list[Need]:
    return list(
        db.session().scalars(
            select(Need).where(Need.screening_id == screening_id).order_by(Need.position)
        )
    )


def safety_answers(*points: int) -> dict[str, str]:
    return {f"q-{code}": POINTS[p] for code, p in zip(SAFETY, points, strict=True)}


def finished(world: World, patient, answers: dict, instrument: str = "ahc-hrsn") -> Screening:
    screening = start(world, patient, instrument=instrument)
    save_answers(world.actor("clinician"), screening.id, answers, rest_negative=True)
    return complete_screening(world.actor("clinician"), screening.id, {})


class TestStart:
    def test_a_child_under_12_cannot_be_the_respondent(self, world: World) -> None:
        patient = make_patient(world)  # 9
        with pytest.raises(InvalidInput) as err:
            start(world, patient, respondent="patient")
        assert "under 12" in err.value.fields["respondent"][0]
        assert count(Screening) == 0

    def test_an_adolescent_may_answer_for_themselves(self, world: World) -> None:
        teen = make_patient(world, birth_date=years_ago(14), language="en")
        screening = start(world, teen, respondent="patient")
        assert (screening.respondent, screening.respondent_name) == ("patient", "Maya Lopez")
        assert screening.respondent_guardian_id is None
        assert screening.language == "en"  # the patient's own

    def test_unknown_guardian_is_refused(self, world: World) -> None:
        patient = make_patient(world)
        other = make_patient(world, given_name="Other")
        for value in (f"guardian:{uuid.uuid4()}", guardian_value(other), "guardian:"):
            with pytest.raises(InvalidInput) as err:
                start(world, patient, respondent=value)
            assert "respondent" in err.value.fields
        assert count(Screening) == 0

    def test_other_caregiver_needs_a_name(self, world: World) -> None:
        patient = make_patient(world)
        for name in ("", "   ", "x" * 201):
            with pytest.raises(InvalidInput) as err:
                start(world, patient, respondent="other", respondent_name=name)
            assert "respondent_name" in err.value.fields
        screening = start(world, patient, respondent="other", respondent_name=" Rosa Diaz ")
        assert (screening.respondent, screening.respondent_name) == ("other", "Rosa Diaz")
        assert screening.respondent_guardian_id is None

    def test_no_respondent_is_refused(self, world: World) -> None:
        with pytest.raises(InvalidInput) as err:
            start(world, make_patient(world), respondent="")
        assert "respondent" in err.value.fields

    def test_language_defaults_to_the_guardians(self, world: World) -> None:
        patient = make_patient(world, language="en", guardian_language="es")
        screening = start(world, patient)
        assert screening.language == "es"
        assert screening.respondent == "guardian"
        assert screening.respondent_guardian_id == patient.guardians[0].id
        assert screening.respondent_name == "Ana Lopez"

    def test_a_guardian_language_without_a_form_falls_back_to_english(self, world: World) -> None:
        patient = make_patient(world, guardian_language="vi")
        assert start(world, patient).language == "en"

    def test_chosen_language_wins_and_must_be_english_or_spanish(self, world: World) -> None:
        patient = make_patient(world)
        assert start(world, patient, language="en").language == "en"
        with pytest.raises(InvalidInput) as err:
            start(world, patient, language="fr")
        assert "language" in err.value.fields

    def test_unknown_instrument_is_refused(self, world: World) -> None:
        patient = make_patient(world)
        with pytest.raises(InvalidInput) as err:
            start(world, patient, instrument="phq-9")
        assert "instrument" in err.value.fields
        assert count(Screening) == 0

    def test_default_instrument_is_ahc(self, world: World) -> None:
        screening = start(world, make_patient(world), instrument="")
        assert (screening.instrument, screening.instrument_code) == ("ahc-hrsn", "96777-8")
        assert screening.status == "in-progress" and screening.answers == {}

    def test_another_clinics_patient_is_not_found(self, world: World) -> None:
        patient = make_patient(world)
        with pytest.raises(NotFound):
            start(world, patient, who="other_clinician")
        assert count(Screening) == 0


class TestSaveAnswers:
    def test_answers_are_kept_as_lists(self, world: World) -> None:
        screening = start(world, make_patient(world))
        save_answers(world.actor("clinician"), screening.id, {"q-88122-7": "LA28397-0"})
        save_answers(world.actor("clinician"), screening.id, {"q-93030-5": "LA32-8"})
        assert fresh(screening.id).answers == {"88122-7": ["LA28397-0"], "93030-5": ["LA32-8"]}

    @pytest.mark.parametrize(
        "form",
        [
            {"q-88122-7": "LA33-6"},  # an answer of another question
            {"q-12345-6": "LA33-6"},  # not a question of the instrument
            {"q-71802-3": ["LA31993-1", "LA31995-6"]},  # two answers to a one-answer question
        ],
    )
    def test_impossible_answer_is_refused_and_nothing_saved(self, world: World, form) -> None:
        screening = start(world, make_patient(world))
        save_answers(world.actor("clinician"), screening.id, {"q-93030-5": "LA32-8"})
        with pytest.raises(InvalidInput) as err:
            save_answers(world.actor("clinician"), screening.id, {"q-88123-5": "LA6729-3", **form})
        assert err.value.fields["answers"]
        assert fresh(screening.id).answers == {"93030-5": ["LA32-8"]}

    def test_skipped(self, world: World) -> None:
        screening = start(world, make_patient(world))
        save_answers(
            world.actor("clinician"), screening.id, {"q-95618-5": "skipped", "q-93030-5": "LA33-6"}
        )
        assert fresh(screening.id).answers == {"95618-5": "skipped", "93030-5": ["LA33-6"]}

    def test_select_all_question_keeps_every_answer(self, world: World) -> None:
        from werkzeug.datastructures import MultiDict

        screening = start(world, make_patient(world))
        form = MultiDict([("q-96778-6", "LA31996-4"), ("q-96778-6", "LA28580-1")])
        save_answers(world.actor("clinician"), screening.id, form)
        assert fresh(screening.id).answers == {"96778-6": ["LA31996-4", "LA28580-1"]}

    def test_rest_negative_fills_only_the_unanswered(self, world: World) -> None:
        screening = start(world, make_patient(world))
        save_answers(
            world.actor("clinician"),
            screening.id,
            {"q-88122-7": "LA28397-0", "q-95618-5": "skipped"},
        )
        save_answers(
            world.actor("clinician"),
            screening.id,
            {"q-96778-6": "LA28580-1", "q-93030-5": "LA33-6"},
            rest_negative=True,
        )
        answers = fresh(screening.id).answers
        assert answers == {
            "71802-3": ["LA31993-1"],  # steady place
            "96778-6": ["LA28580-1"],  # given now: not overwritten
            "88122-7": ["LA28397-0"],  # given before: not overwritten
            "88123-5": ["LA28398-8"],  # never true
            "93030-5": ["LA33-6"],
            "96779-4": ["LA32-8"],
            "95618-5": "skipped",  # skipped stays skipped
            "95617-7": ["LA6270-8"],  # never
            "95616-9": ["LA6270-8"],
            "95615-1": ["LA6270-8"],
        }
        assert set(answers) == set(AHC_HRSN.question_codes)

    def test_rest_negative_leaves_prapare_questions_without_a_single_negative(
        self, world: World
    ) -> None:
        screening = start(world, make_patient(world), instrument="prapare")
        save_answers(world.actor("clinician"), screening.id, {}, rest_negative=True)
        answers = fresh(screening.id).answers
        assert answers == {
            "71802-3": ["LA30189-7"],  # I have housing
            "93033-9": ["LA32-8"],
            "93030-5": ["LA32-8"],
            "76501-6": ["LA32-8"],
        }
        # Work situation and unmet needs have several non-risk answers: the family chooses.
        assert set(PRAPARE.question_codes) - set(answers) == {"67875-5", "93031-3"}

    def test_another_clinic_cannot_save(self, world: World) -> None:
        screening = start(world, make_patient(world))
        with pytest.raises(NotFound):
            save_answers(world.actor("other_clinician"), screening.id, {"q-93030-5": "LA32-8"})
        assert fresh(screening.id).answers == {}


class TestComplete:
    def test_incomplete_is_refused_naming_each_unanswered_question(self, world: World) -> None:
        screening = start(world, make_patient(world))
        save_answers(world.actor("clinician"), screening.id, {"q-88122-7": "LA28397-0"})
        with pytest.raises(InvalidInput) as err:
            complete_screening(world.actor("clinician"), screening.id, {"q-93030-5": "LA33-6"})
        expected = set(AHC_HRSN.question_codes) - {"88122-7", "93030-5"}
        assert set(err.value.fields) == {f"q-{code}" for code in expected}
        assert "8 questions still need an answer" in err.value.message
        saved = fresh(screening.id)
        assert saved.status == "in-progress" and saved.completed_at is None
        assert saved.results == []
        assert count(ScreeningObservation) == 0 and count(Need) == 0

    def test_skipped_questions_count_as_answered_and_make_no_observation(
        self, world: World
    ) -> None:
        screening = start(world, make_patient(world))
        save_answers(
            world.actor("clinician"),
            screening.id,
            {"q-93030-5": "skipped", "q-96778-6": "skipped"},
            rest_negative=True,
        )
        done = complete_screening(world.actor("clinician"), screening.id, {})
        assert done.status == "completed" and done.completed_at is not None
        found = observations(screening.id)
        assert "93030-5" not in found and "96778-6" not in found
        assert len([o for o in found.values() if not o.derived]) == 8
        assert needs(screening.id) == []

    def test_hunger_vital_sign_either_item_gives_a_derived_result_and_a_food_need(
        self, world: World
    ) -> None:
        screening = start(world, make_patient(world), instrument="hvs")
        complete_screening(
            world.actor("clinician"),
            screening.id,
            {"q-88122-7": "LA28398-8", "q-88123-5": "LA6729-3"},  # never / sometimes
        )
        found = observations(screening.id)
        result = found["88124-3"]
        assert result.derived and result.positive
        assert result.answer_codes == ["LA19952-3"] and result.answer_display == "At risk"
        assert result.domains == ["food-insecurity"]
        assert not found["88122-7"].positive and found["88123-5"].positive
        [need] = needs(screening.id)
        assert (need.domain, need.verification, need.clinical_status) == (
            "food-insecurity",
            "unconfirmed",
            "active",
        )
        assert need.evidence == ["88123-5"]
        assert fresh(screening.id).results == [
            {"code": "88124-3", "value": "LA19952-3", "positive": True}
        ]

    def test_hunger_vital_sign_never_true_is_no_risk(self, world: World) -> None:
        screening = start(world, make_patient(world), instrument="hvs")
        complete_screening(
            world.actor("clinician"),
            screening.id,
            {"q-88122-7": "LA28398-8", "q-88123-5": "LA28398-8"},
        )
        result = observations(screening.id)["88124-3"]
        assert result.answer_codes == ["LA19983-8"] and not result.positive
        assert needs(screening.id) == []

    def test_safety_total_11_is_intimate_partner_violence(self, world: World) -> None:
        screening = finished(world, make_patient(world), safety_answers(5, 2, 2, 2))
        total = observations(screening.id)["95614-4"]
        assert total.derived and total.value_integer == 11 and total.positive
        assert total.domains == ["intimate-partner-violence"]
        [need] = needs(screening.id)
        assert need.domain == "intimate-partner-violence"
        assert need.snomed_code == "706893006"
        assert need.icd10_code is None and need.icd10_display is None
        assert set(need.evidence) == set(SAFETY)

    def test_safety_total_10_is_no_need(self, world: World) -> None:
        screening = finished(world, make_patient(world), safety_answers(4, 2, 2, 2))
        total = observations(screening.id)["95614-4"]
        assert total.value_integer == 10 and not total.positive and total.domains == []
        assert needs(screening.id) == []

    def test_a_second_submission_is_a_conflict_and_duplicates_nothing(self, world: World) -> None:
        screening = finished(world, make_patient(world), {"q-88122-7": "LA28397-0"})
        before = (count(ScreeningObservation), count(Need))
        with pytest.raises(Conflict, match="submitted already"):
            complete_screening(world.actor("clinician"), screening.id, {})
        with pytest.raises(Conflict, match="submitted already"):
            save_answers(world.actor("clinician"), screening.id, {"q-93030-5": "LA33-6"})
        assert (count(ScreeningObservation), count(Need)) == before == (11, 1)
        assert fresh(screening.id).answers["93030-5"] == ["LA32-8"]


class TestDecideNeeds:
    def three_needs(self, world: World, name: str = "Maya"):
        screening = finished(
            world,
            make_patient(world, given_name=name),
            {"q-71802-3": "LA31994-9", "q-88122-7": "LA28397-0", "q-93030-5": "LA33-6"},
        )
        by_domain = {need.domain: need for need in needs(screening.id)}
        assert set(by_domain) == {
            "housing-instability",
            "food-insecurity",
            "transportation-insecurity",
        }
        return screening.id, by_domain

    def test_help_now_confirmed_and_dismissed(self, world: World) -> None:
        screening_id, by_domain = self.three_needs(world)
        food, housing, transport = (
            by_domain["food-insecurity"],
            by_domain["housing-instability"],
            by_domain["transportation-insecurity"],
        )
        refer_for_needs(
            world.actor("clinician"),
            screening_id,
            {
                f"need-{food.id}": "help-now",
                f"need-{housing.id}": "confirmed",
                f"need-{transport.id}": "dismissed",
            },
        )
        db.session.remove()
        got = {n.domain: n for n in needs(screening_id)}
        clinician = world.actor("clinician").user_id
        assert (got["food-insecurity"].verification, got["food-insecurity"].family_priority) == (
            "confirmed",
            True,
        )
        assert got["food-insecurity"].clinical_status == "active"
        assert (
            got["housing-instability"].verification,
            got["housing-instability"].family_priority,
            got["housing-instability"].clinical_status,
        ) == ("confirmed", False, "active")
        assert (
            got["transportation-insecurity"].verification,
            got["transportation-insecurity"].family_priority,
            got["transportation-insecurity"].clinical_status,
        ) == ("refuted", False, "inactive")
        assert all(n.decided_by_id == clinician and n.decided_at for n in got.values())
        actions = db.session().scalars(
            select(AuditEvent.action).where(AuditEvent.target_type == "Need")
        )
        assert sorted(actions) == ["need.confirmed", "need.dismissed", "need.help-now"]

    def test_needs_not_mentioned_stay_unconfirmed(self, world: World) -> None:
        screening_id, by_domain = self.three_needs(world)
        food = by_domain["food-insecurity"]
        refer_for_needs(
            world.actor("clinician"),
            screening_id,
            {f"need-{food.id}": "confirmed", f"need-{by_domain['housing-instability'].id}": ""},
        )
        db.session.remove()
        got = {n.domain: n.verification for n in needs(screening_id)}
        assert got == {
            "food-insecurity": "confirmed",
            "housing-instability": "unconfirmed",
            "transportation-insecurity": "unconfirmed",
        }

    def test_unknown_decision_or_need_is_refused_and_nothing_changes(self, world: World) -> None:
        screening_id, by_domain = self.three_needs(world)
        food = by_domain["food-insecurity"]
        for form in (
            {f"need-{food.id}": "maybe"},
            {f"need-{food.id}": "help-now", f"need-{uuid.uuid4()}": "confirmed"},
        ):
            with pytest.raises(InvalidInput):
                refer_for_needs(world.actor("clinician"), screening_id, form)
        db.session.remove()
        assert {n.verification for n in needs(screening_id)} == {"unconfirmed"}

    def test_a_need_of_another_screening_is_refused(self, world: World) -> None:
        screening_id, _ = self.three_needs(world)
        other_id, _ = self.three_needs(world, name="Luis")
        other_need = needs(other_id)[0]
        with pytest.raises(InvalidInput):
            refer_for_needs(
                world.actor("clinician"), screening_id, {f"need-{other_need.id}": "confirmed"}
            )

    def test_deciding_needs_an_unfinished_screening(self, world: World) -> None:
        screening = start(world, make_patient(world))
        with pytest.raises(InvalidInput, match="Finish the screening"):
            refer_for_needs(world.actor("clinician"), screening.id, {})

    def test_another_clinic_cannot_decide(self, world: World) -> None:
        screening_id, by_domain = self.three_needs(world)
        food = by_domain["food-insecurity"]
        with pytest.raises(NotFound):
            refer_for_needs(
                world.actor("other_clinician"), screening_id, {f"need-{food.id}": "dismissed"}
            )


def test_start_update_and_complete_are_audited(world: World) -> None:
    patient = make_patient(world)
    screening = start(world, patient)
    save_answers(world.actor("clinician"), screening.id, {"q-88122-7": "LA28397-0"})
    save_answers(world.actor("clinician"), screening.id, {}, rest_negative=True)
    complete_screening(world.actor("clinician"), screening.id, {})
    db.session.remove()
    entries = (
        db.session()
        .scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "Screening", AuditEvent.target_id == str(screening.id))
            .order_by(AuditEvent.id)
        )
        .all()
    )
    assert [e.action for e in entries] == [
        "screening.start",
        "screening.update",
        "screening.update",
        "screening.complete",
    ]
    assert all(e.patient_id == patient.id and e.outcome == "success" for e in entries)
    assert all(e.actor_user_id == world.actor("clinician").user_id for e in entries)
    assert entries[0].detail == {"instrument": "ahc-hrsn", "respondent": "guardian"}
    assert [e.detail["answered"] for e in entries[1:3]] == [1, 10]
    assert entries[3].detail["positive_domains"] == ["food-insecurity"]
