"""Screening from start to referrals, through the service functions every entry point calls."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from referrals.db import db
from referrals.errors import Conflict, InvalidInput
from referrals.loop.from_screening import refer_for_needs
from referrals.loop.models import Referral
from referrals.patients.models import Consent, Need, Screening, ScreeningObservation
from referrals.patients.screening import (
    complete_screening,
    save_answers,
    start_screening,
)
from tests.helpers import World, make_patient

AHC_FOOD_AND_HOUSING = {
    "q-71802-3": "LA31994-9",  # steady place, worried about losing it
    "q-88122-7": "LA28397-0",  # often true
    "q-88123-5": "LA6729-3",  # sometimes true
}


def start(world: World, patient, **form):
    guardian = patient.guardians[0]
    return start_screening(
        world.actor("clinician"),
        patient.id,
        {"instrument": "ahc-hrsn", "respondent": f"guardian:{guardian.id}", **form},
    )


def finished_ahc(world: World, patient):
    screening = start(world, patient)
    save_answers(world.actor("clinician"), screening.id, AHC_FOOD_AND_HOUSING, rest_negative=True)
    return complete_screening(world.actor("clinician"), screening.id, {})


def test_ahc_food_and_housing_gives_two_unconfirmed_needs_with_codes(world: World) -> None:
    patient = make_patient(world)
    screening = finished_ahc(world, patient)
    assert screening.status == "completed"
    needs = db.session().scalars(select(Need).where(Need.screening_id == screening.id)).all()
    assert {(n.domain, n.verification, n.snomed_code, n.icd10_code) for n in needs} == {
        ("food-insecurity", "unconfirmed", "733423003", "Z59.41"),
        ("housing-instability", "unconfirmed", "1156191002", "Z59.811"),
    }
    observations = (
        db.session()
        .scalars(
            select(ScreeningObservation).where(ScreeningObservation.screening_id == screening.id)
        )
        .all()
    )
    by_code = {o.code: o for o in observations}
    assert len([o for o in observations if not o.derived]) == 10
    assert by_code["88122-7"].positive and by_code["88122-7"].domains == ["food-insecurity"]
    assert not by_code["93030-5"].positive
    assert by_code["95614-4"].derived and by_code["95614-4"].value_integer == 4
    assert not by_code["95614-4"].positive


def test_refer_for_two_needs_in_one_submit(world: World) -> None:
    patient = make_patient(world)
    screening = finished_ahc(world, patient)
    food, housing = sorted(screening.needs, key=lambda n: n.domain)
    guardian = patient.guardians[0]
    form = MultiDict(
        {
            f"need-{food.id}": "help-now",
            f"need-{housing.id}": "help-now",
            f"service-{food.id}": str(world.service_ids["food"]),
            f"service-{housing.id}": str(world.service_ids["housing"]),
            "consent_by": f"guardian:{guardian.id}",
            "consent_method": "verbal",
            "sms_to": f"guardian:{guardian.id}",
        }
    )
    _, referrals = refer_for_needs(world.actor("clinician"), screening.id, form)
    assert len(referrals) == 2
    rows = db.session().scalars(select(Referral).where(Referral.patient_id == patient.id)).all()
    assert {(r.category, r.need_id) for r in rows} == {
        ("food-insecurity", food.id),
        ("housing-instability", housing.id),
    }
    consents = db.session().scalars(select(Consent).where(Consent.patient_id == patient.id)).all()
    assert len(consents) == 2
    assert all(c.sms_phone == "+15105550142" and c.language == "es" for c in consents)
    assert {c.recipient_org_id for c in consents} == {
        world.orgs["food"].id,
        world.orgs["housing"].id,
    }


def test_a_screening_is_submitted_once(world: World) -> None:
    patient = make_patient(world)
    screening = finished_ahc(world, patient)
    with pytest.raises(Conflict, match="submitted already"):
        complete_screening(world.actor("clinician"), screening.id, {})
    count = db.session().scalar(select(func.count(Need.id)))
    assert count == 2


def test_impossible_answer_is_refused_and_nothing_saved(world: World) -> None:
    patient = make_patient(world)
    screening_id = start(world, patient).id
    save_answers(world.actor("clinician"), screening_id, {"q-88123-5": "LA28398-8"})
    with pytest.raises(InvalidInput, match="not an answer"):
        save_answers(
            world.actor("clinician"), screening_id, {"q-88122-7": "LA32-8", "q-88123-5": "LA6729-3"}
        )
    db.session.remove()
    assert db.session().get(Screening, screening_id).answers == {"88123-5": ["LA28398-8"]}


def test_the_same_referral_form_sent_twice_refers_once(world: World) -> None:
    patient = make_patient(world)
    screening = finished_ahc(world, patient)
    food = next(n for n in screening.needs if n.domain == "food-insecurity")
    guardian = patient.guardians[0]
    form = {
        f"need-{food.id}": "help-now",
        f"service-{food.id}": str(world.service_ids["food"]),
        "consent_by": f"guardian:{guardian.id}",
        "consent_method": "verbal",
    }
    refer_for_needs(world.actor("clinician"), screening.id, form)
    with pytest.raises(InvalidInput) as err:
        refer_for_needs(world.actor("clinician"), screening.id, form)
    assert err.value.fields[f"service-{food.id}"] == [
        "Food boxes already has an open referral for food insecurity: see it below."
    ]
    assert db.session().scalar(select(func.count(Referral.id))) == 1
    assert db.session().scalar(select(func.count(Consent.id))) == 1


def test_no_to_the_rest_is_remembered_per_question(world: World, client) -> None:
    patient = make_patient(world)
    screening = start(world, patient)
    actor = world.actor("clinician")
    save_answers(actor, screening.id, AHC_FOOD_AND_HOUSING, rest_negative=True)
    db.session.remove()
    filled = db.session().get(Screening, screening.id).autofilled
    assert set(filled) == {
        "96778-6",
        "93030-5",
        "96779-4",
        "95618-5",
        "95617-7",
        "95616-9",
        "95615-1",
    }
    # Answering one of them by hand makes it the family's answer again.
    save_answers(actor, screening.id, {"q-93030-5": "LA33-6"})
    db.session.remove()
    assert "93030-5" not in db.session().get(Screening, screening.id).autofilled
    complete_screening(actor, screening.id, {})
    client.login(world, "clinician")
    html = client.get(f"/screenings/{screening.id}").get_data(as_text=True)
    assert html.count(">no to the rest</span>") == 6


def test_unticking_every_box_clears_the_answer(world: World) -> None:
    patient = make_patient(world)
    screening = start(world, patient)
    actor = world.actor("clinician")
    save_answers(actor, screening.id, MultiDict([("q-96778-6", "LA31996-4")]))
    save_answers(actor, screening.id, MultiDict([("present", "96778-6")]))
    db.session.remove()
    assert "96778-6" not in db.session().get(Screening, screening.id).answers


def test_a_form_from_a_stale_window_cannot_overwrite(world: World) -> None:
    patient = make_patient(world)
    screening = start(world, patient)
    actor = world.actor("clinician")
    save_answers(actor, screening.id, {"q-88122-7": "LA28397-0", "version": "1", "page": "A"})
    # Window B, opened at version 1, sends its whole form.
    with pytest.raises(Conflict, match="another window"):
        save_answers(actor, screening.id, {"q-88122-7": "LA28398-8", "version": "1", "page": "B"})
    # Window A's own next save is not a conflict.
    save_answers(actor, screening.id, {"q-88123-5": "LA6729-3", "version": "1", "page": "A"})
    db.session.remove()
    assert db.session().get(Screening, screening.id).answers["88122-7"] == ["LA28397-0"]
