"""Goals (SDOHCC-Goal, one per need the family wants help with) and PractitionerRoles (US Core,
one per membership) over FHIR: what they carry through a referral's life, who reads and finds
them (the Condition's readers for a Goal; only its own organisation for a PractitionerRole),
and the search parameters each takes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.practitionerrole import PractitionerRole
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from referrals.auth.models import Membership, User
from referrals.db import db
from referrals.fhir import mapping, profiles
from referrals.loop.from_screening import refer_for_needs
from referrals.patients.models import Need, Patient
from referrals.patients.needs import GOAL_CODES, NEED_CODES, goal_codes
from referrals.patients.screening import complete_screening, save_answers, start_screening
from referrals.terminology import SDOH_CATEGORIES, SDOHCC_CODES, SNOMED
from tests.fhir.test_api import outcome
from tests.fhir.test_search import Client
from tests.helpers import World, make_patient, move, statements_run
from tests.patients.test_screening_flow import AHC_FOOD_AND_HOUSING

GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"


@dataclass
class Needs:
    """Maya: food and housing, both wanted now and referred (food bank, housing agency). Ben:
    food wanted now but not referred yet, housing confirmed but not wanted now. Cleo: food
    dismissed, housing wanted now and referred. Ada: clinic2's patient, food referred."""

    maya_food: uuid.UUID
    maya_housing: uuid.UUID
    food_referral: uuid.UUID
    housing_referral: uuid.UUID
    ben: uuid.UUID
    ben_food: uuid.UUID
    ben_housing: uuid.UUID
    cleo_food: uuid.UUID
    cleo_housing: uuid.UUID
    ada_food: uuid.UUID


def _decide(world: World, patient, who: str = "clinician", **decisions: tuple[str, str | None]):
    """Screen the patient (food and housing positive), decide on each need
    (`food=("help-now", "food")`: the decision, and the service to refer to or None) and refer:
    {"food"|"housing": need id}, {"food"|"housing": referral id}."""
    guardian = patient.guardians[0]
    actor = world.actor(who)
    started = start_screening(
        actor, patient.id, {"instrument": "ahc-hrsn", "respondent": f"guardian:{guardian.id}"}
    )
    save_answers(actor, started.id, AHC_FOOD_AND_HOUSING, rest_negative=True)
    screening = complete_screening(actor, started.id, {})
    needs = {n.domain.split("-")[0]: n.id for n in screening.needs}
    form = MultiDict(
        {
            "consent_by": f"guardian:{guardian.id}",
            "consent_method": "verbal",
            "sms_to": f"guardian:{guardian.id}",
        }
    )
    for key, (decision, service) in decisions.items():
        form[f"need-{needs[key]}"] = decision
        if service:
            form[f"service-{needs[key]}"] = str(world.service_ids[service])
    _, referrals = refer_for_needs(actor, screening.id, form)
    by_need = {r.need_id: r.id for r in referrals}
    return needs, {key: by_need[need] for key, need in needs.items() if need in by_need}


@pytest.fixture
def needs(world: World) -> Needs:
    maya = make_patient(world, given_name="Maya")
    maya_needs, maya_referrals = _decide(
        world, maya, food=("help-now", "food"), housing=("help-now", "housing")
    )
    ben = make_patient(world, given_name="Ben")
    ben_needs, _ = _decide(world, ben, food=("help-now", None), housing=("confirmed", None))
    cleo = make_patient(world, given_name="Cleo")
    cleo_needs, _ = _decide(world, cleo, food=("dismissed", None), housing=("help-now", "housing"))
    ada = make_patient(world, "other_clinician", given_name="Ada")
    ada_needs, _ = _decide(world, ada, "other_clinician", food=("help-now", "food"))
    db.session.remove()
    return Needs(
        maya_food=maya_needs["food"],
        maya_housing=maya_needs["housing"],
        food_referral=maya_referrals["food"],
        housing_referral=maya_referrals["housing"],
        ben=ben.id,
        ben_food=ben_needs["food"],
        ben_housing=ben_needs["housing"],
        cleo_food=cleo_needs["food"],
        cleo_housing=cleo_needs["housing"],
        ada_food=ada_needs["food"],
    )


def goal(client: Client, need: uuid.UUID) -> dict:
    response = client.response(f"Goal/{need}")
    assert response.status_code == 200, response.get_json()
    resource = response.get_json()
    Goal.model_validate(resource)
    assert profiles.check(resource) == [], profiles.check(resource)
    return resource


def achievement(resource: dict) -> list[str]:
    return [
        c["code"]
        for c in resource.get("achievementStatus", {}).get("coding", [])
        if c["system"] == GOAL_ACHIEVEMENT
    ]


# --- the goal codes ---------------------------------------------------------------------------


@pytest.mark.pure
def test_goal_codes_are_confirmed_ones_or_words() -> None:
    """Only the codes HL7's own examples confirm; every other goal is described in words."""
    coded = {d: (g.snomed.code, g.snomed.display) for d, g in GOAL_CODES.items() if g.snomed}
    assert coded == {
        "food-insecurity": ("1078229009", "Food security"),
        "employment-status": ("406156006", "In paid employment"),
    }
    assert all(g.snomed is None or g.snomed.system == SNOMED for g in GOAL_CODES.values())
    assert set(NEED_CODES) <= set(GOAL_CODES), "every need we code has a goal of its own"
    assert goal_codes("housing-instability").display == "Housing stability"
    assert goal_codes("stress").display == "Stress addressed"
    assert all(goal_codes(domain).domain == domain for domain in SDOH_CATEGORIES)
    with pytest.raises(ValueError):
        goal_codes("weather")


# --- what a Goal carries ----------------------------------------------------------------------


def test_a_goal_follows_its_referral_from_sent_to_completed(
    app, world: World, needs: Needs
) -> None:
    clinic = Client(app, world, "clinic")
    sent = goal(clinic, needs.maya_food)
    base = clinic.base
    assert sent["id"] == str(needs.maya_food)
    assert sent["meta"]["profile"] == [profiles.GOAL]
    assert sent["meta"]["lastUpdated"]
    assert sent["lifecycleStatus"] == "active"
    assert achievement(sent) == ["in-progress"]
    assert sent["category"] == [
        {
            "coding": [
                {"system": SDOHCC_CODES, "code": "food-insecurity", "display": "Food insecurity"}
            ]
        }
    ]
    assert sent["description"] == {
        "coding": [{"system": SNOMED, "code": "1078229009", "display": "Food security"}],
        "text": "Food security",
    }
    maya = db.session().get(Need, needs.maya_food).patient_id
    db.session.remove()
    assert sent["subject"]["reference"] == f"{base}/Patient/{maya}"
    assert sent["expressedBy"]["reference"] == f"{base}/Patient/{maya}"
    assert [a["reference"] for a in sent["addresses"]] == [f"{base}/Condition/{needs.maya_food}"]
    assert sent["startDate"] and sent["statusDate"]

    move(world, "food", needs.food_referral, "accept")
    assert achievement(goal(clinic, needs.maya_food)) == ["in-progress"]
    move(world, "food", needs.food_referral, "start")
    move(world, "food", needs.food_referral, "complete", output_code="710925007")
    done = goal(clinic, needs.maya_food)
    assert achievement(done) == ["improving"]
    assert done["meta"]["lastUpdated"] > sent["meta"]["lastUpdated"]
    # Its Condition is what it addresses, and reads as the same need.
    condition = clinic.response(f"Condition/{needs.maya_food}").get_json()
    assert condition["id"] == done["id"]


def test_a_goal_without_a_confirmed_code_is_described_in_words(
    app, world: World, needs: Needs
) -> None:
    housing = goal(Client(app, world, "clinic"), needs.maya_housing)
    assert housing["description"] == {"text": "Housing stability"}
    assert achievement(housing) == ["in-progress"]


def test_without_a_referral_or_after_a_decline_progress_is_not_stated(
    app, world: World, needs: Needs
) -> None:
    clinic = Client(app, world, "clinic")
    unreferred = goal(clinic, needs.ben_food)
    assert "achievementStatus" not in unreferred and "statusDate" not in unreferred
    move(world, "housing", needs.housing_referral, "decline", reason="at-capacity")
    declined = goal(clinic, needs.maya_housing)
    assert "achievementStatus" not in declined


@pytest.mark.parametrize("which", ["ben_housing", "cleo_food"])
def test_only_a_need_confirmed_and_wanted_now_has_a_goal(
    app, world: World, needs: Needs, which: str
) -> None:
    """Confirmed but not wanted now, or dismissed: the Condition is read, the Goal is 404."""
    clinic = Client(app, world, "clinic")
    need = getattr(needs, which)
    assert clinic.response(f"Condition/{need}").status_code == 200
    response = clinic.response(f"Goal/{need}")
    assert response.status_code == 404
    assert outcome(response).issue[0].code == "not-found"
    assert need not in clinic.ids("Goal")
    assert not mapping.has_goal(db.session().get(Need, need))


# --- who reads and finds Goals ----------------------------------------------------------------


def test_goals_are_read_and_found_like_their_conditions(app, world: World, needs: Needs) -> None:
    clinic, food, housing = (Client(app, world, org) for org in ("clinic", "food", "housing"))
    mine = {needs.maya_food, needs.maya_housing, needs.ben_food, needs.cleo_housing}
    assert clinic.ids("Goal") == mine
    # A recipient: the goal of the need its referral is for; nothing else of the patient's.
    assert food.ids("Goal") == {needs.maya_food, needs.ada_food}
    assert housing.ids("Goal") == {needs.maya_housing, needs.cleo_housing}
    assert goal(food, needs.maya_food)["id"] == str(needs.maya_food)
    for client, refused in (
        (food, needs.maya_housing),
        (food, needs.ben_food),
        (housing, needs.maya_food),
        (Client(app, world, "clinic2"), needs.maya_food),
        (Client(app, world, "school"), needs.maya_food),
    ):
        assert client.response(f"Goal/{refused}").status_code == 404
        assert refused not in client.ids("Goal")
    # What a search finds is what a read gives.
    for found in food.bundle("Goal")["entry"]:
        assert food.response(f"Goal/{found['resource']['id']}").get_json() == found["resource"]


def test_a_recipient_sees_progress_only_from_its_own_referral(
    app, world: World, needs: Needs
) -> None:
    """Ben's food need, referred to the school and to the food bank, which helps: the clinic
    reads it improving; the school, still working its own referral, in progress."""
    need = db.session().get(Need, needs.ben_food)
    patient, screening = db.session().get(Patient, need.patient_id), need.screening_id
    guardian = f"guardian:{patient.guardians[0].id}"
    form = MultiDict(
        {
            f"need-{need.id}": "help-now",
            f"service-{need.id}": str(world.service_ids["school"]),
            "consent_by": guardian,
            "consent_method": "verbal",
            "sms_to": guardian,
        }
    )
    db.session.remove()
    (school_referral,) = refer_for_needs(world.actor("clinician"), screening, form)[1]
    form[f"service-{need.id}"] = str(world.service_ids["food"])
    (food_referral,) = refer_for_needs(world.actor("clinician"), screening, form)[1]
    move(world, "food", food_referral.id, "accept")
    move(world, "food", food_referral.id, "complete", output_code="710925007")
    move(world, "school", school_referral.id, "accept")

    assert achievement(goal(Client(app, world, "clinic"), need.id)) == ["improving"]
    assert achievement(goal(Client(app, world, "food"), need.id)) == ["improving"]
    school = Client(app, world, "school")
    assert achievement(goal(school, need.id)) == ["in-progress"]
    (found,) = school.bundle(f"Goal?_id={need.id}")["entry"]
    assert achievement(found["resource"]) == ["in-progress"]


def test_goals_are_searched_by_id_category_and_patient(app, world: World, needs: Needs) -> None:
    clinic = Client(app, world, "clinic")
    assert clinic.ids(f"Goal?_id={needs.maya_food},{needs.ben_food}") == {
        needs.maya_food,
        needs.ben_food,
    }
    assert clinic.ids("Goal?category=food-insecurity") == {needs.maya_food, needs.ben_food}
    assert clinic.ids(f"Goal?category={SDOHCC_CODES}|housing-instability") == {
        needs.maya_housing,
        needs.cleo_housing,
    }
    assert clinic.ids("Goal?category=health-concern") == set()
    assert clinic.ids(f"Goal?patient=Patient/{needs.ben}") == {needs.ben_food}
    assert clinic.ids(f"Goal?patient={needs.ben}&category=housing-instability") == set()


@pytest.mark.parametrize(
    "query",
    [
        "Goal?lifecycle-status=active",
        "Goal?subject=Patient/1",
        "Goal?category:text=food",
        "PractitionerRole?practitioner=x",
        "PractitionerRole?name=Clinician",
    ],
)
def test_unknown_search_parameters_are_400(app, world: World, query: str) -> None:
    response = Client(app, world, "clinic").response(query)
    assert response.status_code == 400
    assert outcome(response).issue[0].code == "invalid"


# --- PractitionerRole -------------------------------------------------------------------------


def _memberships(world: World, org: str) -> set[uuid.UUID]:
    ids = set(
        db.session().scalars(
            select(Membership.id).where(Membership.organization_id == world.orgs[org].id)
        )
    )
    db.session.remove()
    return ids


def test_an_organisation_reads_and_finds_its_own_people(app, world: World) -> None:
    clinic = Client(app, world, "clinic")
    own = _memberships(world, "clinic")
    assert len(own) == 2
    assert clinic.ids("PractitionerRole") == own
    org = f"Organization/{world.orgs['clinic'].id}"
    assert clinic.ids(f"PractitionerRole?organization={org}") == own
    key = sorted(own)[0]
    assert clinic.ids(f"PractitionerRole?_id={key}") == {key}
    response = clinic.response(f"PractitionerRole/{key}")
    assert response.status_code == 200
    resource = response.get_json()
    PractitionerRole.model_validate(resource)
    assert profiles.check(resource) == []
    assert resource["meta"]["profile"] == [profiles.US_CORE_PRACTITIONER_ROLE]
    assert resource["organization"]["reference"] == f"{clinic.base}/{org}"
    assert resource["active"] is True
    assert any(t["system"] == "email" for t in resource["telecom"])
    found = clinic.bundle(f"PractitionerRole?_id={key}")["entry"][0]["resource"]
    assert found == resource


def test_another_organisations_people_are_neither_read_nor_found(app, world: World) -> None:
    """A search never shows what a read refuses."""
    food = Client(app, world, "food")
    clinic_people = _memberships(world, "clinic")
    org = f"Organization/{world.orgs['clinic'].id}"
    assert food.ids(f"PractitionerRole?organization={org}") == set()
    assert food.ids("PractitionerRole") == _memberships(world, "food")
    for key in clinic_people:
        response = food.response(f"PractitionerRole/{key}")
        assert response.status_code == 404
        assert "does not exist, or is not shared with you" in outcome(response).issue[0].diagnostics
        assert food.ids(f"PractitionerRole?_id={key}") == set()


def test_people_are_searched_by_active(app, world: World) -> None:
    session = db.session()
    user = session.scalar(select(User).where(User.email == world.emails["clinician2"]))
    left = session.scalar(select(Membership.id).where(Membership.user_id == user.id))
    user.active = False  # no service deactivates a person yet: as an operator would
    session.commit()
    db.session.remove()
    clinic = Client(app, world, "clinic")
    everyone = _memberships(world, "clinic")
    assert clinic.ids("PractitionerRole?active=false") == {left}
    assert clinic.ids("PractitionerRole?active=true") == everyone - {left}
    assert clinic.response(f"PractitionerRole/{left}").get_json()["active"] is False
    response = clinic.response("PractitionerRole?active=maybe")
    assert response.status_code == 400


@pytest.mark.parametrize("query", ["Goal?_count={n}", "PractitionerRole?_count={n}"])
def test_queries_do_not_grow_with_the_rows(app, world: World, needs: Needs, query: str) -> None:
    """No query per row: a page of one and a page of all take as many statements."""
    clinic = Client(app, world, "clinic")
    one = statements_run(lambda: clinic.bundle(query.format(n=1)))
    every = statements_run(lambda: clinic.bundle(query.format(n=200)))
    assert every == one, query
