"""Importing Open Referral HSDS 3.x: the published examples, our own exports, and bad input."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import Organization
from referrals.db import db
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.models import (
    Attribute,
    Language,
    Location,
    Phone,
    Program,
    Schedule,
    Service,
    TaxonomySdohMap,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "hsds" / "examples"
SERVICE_ID = uuid.UUID("ac148810-d857-441c-9679-408f346de14b")
ORG_ID = uuid.UUID("d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610")


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model))


def test_the_published_full_service_example_imports_with_its_fields(app):
    report = import_hsds(EXAMPLES / "service_full.json")
    assert report.ok, report.lines()
    db.session.remove()
    service = db.session().get(Service, SERVICE_ID)
    assert service.name == "Community Counselling"
    assert service.minimum_age == 12 and service.maximum_age == 100
    assert service.organization.name == "Example Organization Inc."
    assert service.organization.kind == "cbo" and service.organization.hipaa_covered is False
    assert service.language_codes == ["ur"]
    assert service.free_of_charge is False  # one cost option at 35 gbp
    assert service.last_modified.isoformat() == "2023-03-15T10:30:45.123000+00:00"
    assert db.session().get(Program, uuid.UUID("e7ec2e57-4540-43fa-b2c7-6be5a0ef7f42"))
    # The phone listed under the service, its location, contact and organization is one row.
    phone = db.session().get(Phone, uuid.UUID("1554f2e2-a373-45db-a3fa-9fc48a61c15e"))
    assert phone.service_id == SERVICE_ID and phone.organization_id == ORG_ID
    assert phone.location_id == uuid.UUID("3a19ff88-4620-4d17-9830-ac1d859eb5d5")
    assert phone.extension == "100" and count(Phone) == 1
    assert count(Language) == 1 and count(Schedule) == 1 and count(Attribute) == 1
    location = db.session().get(Location, uuid.UUID("3a19ff88-4620-4d17-9830-ac1d859eb5d5"))
    assert location.latitude is None and location.longitude is None
    lines = "\n".join(report.lines())
    assert "latitude: 100 is outside -90..90; imported without coordinates" in lines
    assert "parent_organization_id: no organization with id cd09a387" in lines
    assert "Not stored" not in lines
    # What we have no column for is kept verbatim on its record.
    assert service.hsds_extra["funding"][0]["id"] == "1f2df32c-bf08-4b8e-bd6f-e834014b19bc"
    assert service.hsds_extra["wait_time"] == "wait_time"
    assert service.organization.hsds_extra["tax_status"] == "tax_status"
    assert location.hsds_extra["accessibility"][0]["details"].startswith("Switch hearing aid")


def test_the_published_examples_fail_strict_mode_on_their_placeholder_coordinates(app):
    report = import_hsds(EXAMPLES / "service_full.json", strict=True)
    assert not report.ok
    messages = [str(p) for p in report.dataset.errors]
    assert any("location: latitude: 100 is outside -90..90" in m for m in messages)
    assert count(Service) == 0


def service_doc(**overrides) -> dict:
    """A small valid HSDS service with its organization, location and a taxonomy term."""
    doc = {
        "id": "11111111-1111-4111-8111-111111111111",
        "name": "Pantry",
        "status": "active",
        "organization": {
            "id": "22222222-2222-4222-8222-222222222222",
            "name": "Eastside Pantry",
            "description": "Food for the east side",
        },
        "languages": [{"id": "33333333-3333-4333-8333-333333333333", "code": "es"}],
        "cost_options": [
            {"id": "44444444-4444-4444-8444-444444444444", "amount": 0, "currency": "USD"}
        ],
        "service_at_locations": [
            {
                "id": "55555555-5555-4555-8555-555555555555",
                "location": {
                    "id": "66666666-6666-4666-8666-666666666666",
                    "location_type": "physical",
                    "latitude": 37.8,
                    "longitude": -122.27,
                    "addresses": [
                        {
                            "id": "77777777-7777-4777-8777-777777777777",
                            "address_1": "1 Main St",
                            "city": "Oakland",
                            "state_province": "CA",
                            "postal_code": "94607",
                            "country": "US",
                            "address_type": "physical",
                        }
                    ],
                },
            }
        ],
        "phones": [{"id": "88888888-8888-4888-8888-888888888888", "number": "510-555-0100"}],
        "attributes": [
            {
                "id": "99999999-9999-4999-8999-999999999999",
                "taxonomy_term": {
                    "id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
                    "code": "BD-1800.2000-620",
                    "name": "Food Pantries",
                    "description": "",
                },
            }
        ],
    }
    doc.update(overrides)
    return doc


def write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_a_new_service_gets_categories_languages_and_price_from_its_data(app, tmp_path):
    report = import_hsds(write(tmp_path, "pantry.json", service_doc()))
    assert report.ok, report.lines()
    db.session.remove()
    service = db.session().get(Service, uuid.UUID("11111111-1111-4111-8111-111111111111"))
    # BD-1800.2000-620 sits under BD-1800.2000 (food pantries) in the seeded map
    assert service.categories == ["food-insecurity"]
    assert service.language_codes == ["es"] and service.free_of_charge is True
    assert count(TaxonomySdohMap) > 20  # seeded because it was empty
    org = db.session().get(Organization, uuid.UUID("22222222-2222-4222-8222-222222222222"))
    assert (org.kind, org.hipaa_covered) == ("cbo", False)
    entry = db.session().scalar(
        select(AuditEvent).where(AuditEvent.action == "hsds.import").order_by(AuditEvent.id)
    )
    assert entry.actor_name == "hsds import" and entry.target_id == "pantry.json"
    assert entry.detail["created"]["service"] == 1


def test_the_extension_overrides_what_would_be_derived(app, tmp_path):
    doc = service_doc(
        x_referrals={
            "categories": ["housing-instability"],
            "sensitive": True,
            "capacity": {"status": "no-capacity", "note": "Full", "updated_at": None},
        }
    )
    doc["organization"]["x_referrals"] = {"kind": "school", "hipaa_covered": True}
    assert import_hsds(write(tmp_path, "pantry.json", doc)).ok
    db.session.remove()
    service = db.session().get(Service, uuid.UUID(doc["id"]))
    assert service.categories == ["housing-instability"] and service.sensitive is True
    assert service.capacity_status == "no-capacity" and service.capacity_note == "Full"
    assert (service.organization.kind, service.organization.hipaa_covered) == ("school", True)


def test_every_problem_is_reported_by_file_record_and_field_and_nothing_is_written(app, tmp_path):
    bad = service_doc(
        name="",
        status="open",
        minimum_age="twelve",
        assured_date="01/02/2024",
        email="not-an-email",
    )
    bad["service_at_locations"][0]["location"]["addresses"][0].pop("city")
    bad["service_at_locations"][0]["location"]["location_type"] = "building"
    bad["phones"][0]["id"] = "88888888"
    bad["attributes"].append(
        {
            "id": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
            "taxonomy_term_id": "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
        }
    )
    second = service_doc(id="dddddddd-dddd-4ddd-8ddd-dddddddddddd")
    second["organization"]["name"] = "Another name for the same id"
    report = import_hsds(write(tmp_path, "bad.json", [bad, second]))
    assert not report.ok
    lines = report.lines()
    expected = [
        "bad.json:record 1: name: is required",
        "bad.json:record 1: status: 'open' is not one of: active, inactive, defunct, "
        "temporarily closed",
        "bad.json:record 1: minimum_age: 'twelve' is not a number",
        "bad.json:record 1: assured_date: '01/02/2024' is not a date (YYYY-MM-DD)",
        "bad.json:record 1: email: 'not-an-email' is not an email address",
        "bad.json:record 1/service_at_locations[0]/location: location_type: 'building' is not "
        "one of: physical, postal, virtual",
        "bad.json:record 1/service_at_locations[0]/location/addresses[0]: city: is required",
        "bad.json:record 1/phones[0]: id: '88888888' is not a UUID",
        "bad.json:record 2/organization: name: id 22222222-2222-4222-8222-222222222222 is used "
        "for two different organization records (first at bad.json:record 1/organization, "
        "where name is 'Eastside Pantry')",
    ]
    for line in expected:
        assert line in lines, line
    assert lines[-1] == f"{len(report.dataset.errors)} problem(s) found; nothing was imported."
    assert count(Service) == 0 and count(Organization) == 0


def test_references_to_unknown_records_are_errors(app, tmp_path):
    doc = service_doc()
    doc["attributes"] = [
        {
            "id": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
            "taxonomy_term_id": "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
        }
    ]
    doc["program_id"] = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
    report = import_hsds(write(tmp_path, "refs.json", doc))
    messages = [str(p) for p in report.dataset.errors]
    assert messages == [
        "refs.json:record 1: program_id: no program with id "
        "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee in the input or the directory",
        "refs.json:record 1/attributes[0]: taxonomy_term_id: no taxonomy term with id "
        "cccccccc-cccc-4ccc-8ccc-cccccccccccc in the input or the directory",
    ]
    assert count(Service) == 0


def test_malformed_json_and_wrong_encodings_are_reported_with_their_line(app, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text('{"id": "x",\n  "name": }', encoding="utf-8")
    (folder / "b.json").write_bytes('{"name": "Caf\u00e9"}'.encode("latin-1"))
    (folder / "c.json").write_text(json.dumps(service_doc()), encoding="utf-8")
    report = import_hsds(folder)
    assert [str(p) for p in report.dataset.errors] == [
        "a.json:line 2: JSON: malformed: Expecting value",
        "b.json:line 1: encoding: not UTF-8 (byte 0xe9 at offset 13)",
    ]
    assert count(Service) == 0  # the good file is not written either


def test_out_of_range_coordinates_warn_unless_strict(app, tmp_path):
    doc = service_doc()
    doc["service_at_locations"][0]["location"]["latitude"] = 137.8
    lenient = import_hsds(write(tmp_path, "geo.json", doc), dry_run=True)
    assert lenient.ok
    assert [str(p) for p in lenient.dataset.warnings] == [
        "warning: geo.json:record 1/service_at_locations[0]/location: latitude: 137.8 is "
        "outside -90..90; imported without coordinates"
    ]
    strict = import_hsds(write(tmp_path, "geo.json", doc), strict=True)
    assert [str(p) for p in strict.dataset.errors] == [
        "geo.json:record 1/service_at_locations[0]/location: latitude: 137.8 is outside -90..90"
    ]


def test_a_dry_run_checks_everything_and_writes_nothing(app, tmp_path):
    report = import_hsds(write(tmp_path, "pantry.json", service_doc()), dry_run=True)
    assert report.ok
    assert "Dry run: the input is valid; nothing was written." in report.lines()
    assert count(Service) == 0 and count(TaxonomySdohMap) == 0


def test_reimport_removes_what_left_the_input_but_keeps_referred_services(app, world, tmp_path):
    first = service_doc()
    other = service_doc(id="dddddddd-dddd-4ddd-8ddd-dddddddddddd", name="Second pantry")
    other.update(phones=[], languages=[], cost_options=[], attributes=[])
    other["service_at_locations"] = []
    assert import_hsds(write(tmp_path, "in.json", [first, other])).ok
    db.session.remove()
    # A referral now points at the first service.
    from referrals.loop.models import Referral
    from tests.helpers import make_patient, send

    world.services["pantry"] = db.session().get(Service, uuid.UUID(first["id"]))
    patient = make_patient(world)
    referral = send(world, patient, service="pantry")
    assert db.session().get(Referral, referral.id).service_id == uuid.UUID(first["id"])
    db.session.remove()

    # The next file lists only the second service, without its phone list changes.
    other["phones"] = [{"id": "ffffffff-ffff-4fff-8fff-ffffffffffff", "number": "510-555-0111"}]
    report = import_hsds(write(tmp_path, "in.json", [other]), prune=True)
    assert report.ok, report.lines()
    db.session.remove()
    kept = db.session().get(Service, uuid.UUID(first["id"]))
    assert kept.status == "inactive"
    assert report.inactivated == [kept.id]
    assert db.session().get(Phone, uuid.UUID("ffffffff-ffff-4fff-8fff-ffffffffffff"))
    # Its own phone stays: the first service was not in this input, so its lists stand.
    assert db.session().get(Phone, uuid.UUID("88888888-8888-4888-8888-888888888888"))

    other["phones"] = []
    report = import_hsds(write(tmp_path, "in.json", [other]))
    assert report.removed["phone"] == 1
    db.session.remove()
    assert db.session().get(Phone, uuid.UUID("ffffffff-ffff-4fff-8fff-ffffffffffff")) is None


def test_a_service_nobody_referred_to_is_deleted_when_it_leaves_the_input(app, tmp_path):
    first = service_doc()
    other = service_doc(id="dddddddd-dddd-4ddd-8ddd-dddddddddddd", name="Second pantry")
    other.update(phones=[], languages=[], cost_options=[], attributes=[])
    other["service_at_locations"] = []
    assert import_hsds(write(tmp_path, "in.json", [first, other])).ok
    partial = import_hsds(write(tmp_path, "in.json", [other]))
    assert partial.ok and partial.removed["service"] == 0  # a page or a delta removes nothing
    assert db.session().get(Service, uuid.UUID(first["id"])) is not None
    db.session.remove()
    report = import_hsds(write(tmp_path, "in.json", [other]), prune=True)
    assert report.ok and report.removed["service"] == 1
    db.session.remove()
    assert db.session().get(Service, uuid.UUID(first["id"])) is None
    assert db.session().get(Phone, uuid.UUID("88888888-8888-4888-8888-888888888888")) is None
    assert count(Attribute) == 0


def test_the_published_simple_service_example_imports_cleanly(app):
    report = import_hsds(EXAMPLES / "service_simple.json")
    assert report.ok and report.dataset.count("service") == 1
    db.session.remove()
    service = db.session().get(Service, SERVICE_ID)
    assert service.program_id == uuid.UUID("e7ec2e57-4540-43fa-b2c7-6be5a0ef7f42")
    assert service.organization.year_incorporated == 2011


def test_the_published_csv_tables_parse_and_their_unrelated_ids_are_caught(app):
    report = import_hsds(EXAMPLES / "csv")
    errors = [str(p) for p in report.dataset.errors]
    # Every row reads cleanly; only references between the sample tables fail, since each
    # sample invents the ids it points at.
    unknown = "in the input or the directory"
    assert all(e.endswith(unknown) for e in errors), errors
    assert errors[:3] == [
        f"csv/program.csv:row 2: organization_id: no organization with id "
        f"5978833f-21aa-4235-a56b-7d2f94ce8f35 {unknown}",
        f"csv/service.csv:row 2: organization_id: no organization with id "
        f"0fdfb57f-c147-4cfb-864c-44788a335d8c {unknown}",
        f"csv/service.csv:row 2: program_id: no program with id "
        f"24682fa0-3eda-4afc-a026-84a21c7a882e {unknown}",
    ]
    assert len(errors) == 12
    assert not report.dataset.not_stored
    service = report.dataset.records["service"][uuid.UUID("ac148810-d857-441c-9679-408f346de14b")]
    assert service.extra is not None and service.extra["wait_time"] == "wait_time"
    assert report.dataset.count("service") == 1 and report.dataset.count("phone") == 1
    phone = report.dataset.records["phone"][uuid.UUID("1554f2e2-a373-45db-a3fa-9fc48a61c15e")]
    assert phone.values["number"] == '"+44 1234 234567"' and phone.values["extension"] == "100"
    assert count(Service) == 0


def package(folder: Path, tables: dict[str, str], manifest: object | None = None) -> Path:
    """A tabular data package in `folder` with the given CSV texts."""
    folder.mkdir()
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    if manifest is None:
        manifest = {"resources": [{"name": n, "path": f"{n}.csv"} for n in tables]}
    (folder / "datapackage.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


ORG_CSV = "id,name,description\n22222222-2222-4222-8222-222222222222,Eastside Pantry,Food for all\n"


def test_a_tabular_package_is_imported_from_a_folder_or_a_zip(app, tmp_path):
    tables = {
        "organizations": ORG_CSV,
        "services": "id,organization_id,name,status,minimum_age,x_referrals\n"
        "11111111-1111-4111-8111-111111111111,22222222-2222-4222-8222-222222222222,"
        'Pantry,active,5,"{""categories"": [""food-insecurity""]}"\n',
    }
    folder = package(tmp_path / "pkg", tables)
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in folder.iterdir():
            z.write(file, f"export/{file.name}")
    report = import_hsds(archive)
    assert report.ok, report.lines()
    assert report.created["service"] == 1 and report.created["organization"] == 1
    db.session.remove()
    service = db.session().get(Service, uuid.UUID("11111111-1111-4111-8111-111111111111"))
    assert service.minimum_age == 5 and service.categories == ["food-insecurity"]
    again = import_hsds(folder)
    assert again.ok and sum(again.updated.values()) == 0


def test_tabular_problems_name_the_file_row_and_field(app, tmp_path):
    tables = {
        "organizations": ORG_CSV,
        "services": "id,organization_id,name,status\n"
        "11111111-1111-4111-8111-111111111111,,Pantry,active\n"
        "11111111-1111-4111-8111-111111111111,22222222-2222-4222-8222-222222222222,Pantry,"
        "active,extra\n"
        "not-a-uuid,22222222-2222-4222-8222-222222222222,Other,closed\n",
        "locations": "id,location_type,latitude\n"
        "66666666-6666-4666-8666-666666666666,physical,north\n",
    }
    report = import_hsds(package(tmp_path / "pkg", tables))
    assert [str(p) for p in report.dataset.errors] == [
        "pkg/services.csv:row 2: organization_id: is required",
        "pkg/services.csv:row 3: CSV: has more cells than the header has columns",
        "pkg/services.csv:row 4: id: 'not-a-uuid' is not a UUID",
        "pkg/services.csv:row 4: status: 'closed' is not one of: active, inactive, defunct, "
        "temporarily closed",
        "pkg/locations.csv:row 2: latitude: 'north' is not a number",
    ]
    assert count(Organization) == 0


def test_a_package_without_its_manifest_or_files_is_refused(app, tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("services.csv", "id\n")
    assert [str(p) for p in import_hsds(empty).dataset.errors] == [
        "empty.zip: datapackage.json: is missing"
    ]
    manifest = {"resources": [{"name": "service", "path": "services.csv"}]}
    missing = package(tmp_path / "missing", {}, manifest)
    assert [str(p) for p in import_hsds(missing).dataset.errors] == [
        "missing/services.csv: file: is listed in datapackage.json but missing"
    ]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    assert "broken.zip: zip: cannot be read" in str(import_hsds(broken).dataset.errors[0])


def test_imported_services_are_found_by_the_directory_search(app, tmp_path):
    from referrals.directory.search import SearchRow

    assert import_hsds(write(tmp_path, "pantry.json", service_doc())).ok
    db.session.remove()
    rows = db.session().scalars(select(SearchRow)).all()
    assert [(r.category, r.latitude, r.free) for r in rows] == [("food-insecurity", 37.8, True)]
    assert "|es|" in rows[0].languages


def test_taxonomy_and_organization_files_with_parents_listed_after_children(app, tmp_path):
    parent, child = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
    folder = tmp_path / "in"
    folder.mkdir()
    write(
        folder,
        "taxonomy_terms.json",
        {
            "contents": [
                {
                    "id": child,
                    "code": "BD-1800",
                    "name": "Emergency Food",
                    "description": "",
                    "parent_id": parent,
                },
                {"id": parent, "code": "BD", "name": "Basic Needs", "description": ""},
            ]
        },
    )
    write(
        folder,
        "organizations.json",
        [
            {"id": child, "name": "Branch", "description": "", "parent_organization_id": parent},
            {
                "id": parent,
                "name": "Head office",
                "description": "",
                "x_referrals": {"kind": "clinic", "hipaa_covered": True},
            },
        ],
    )
    report = import_hsds(folder)
    assert report.ok, report.lines()
    db.session.remove()
    from referrals.directory.models import TaxonomyTerm

    assert db.session().get(TaxonomyTerm, uuid.UUID(child)).parent_id == uuid.UUID(parent)
    branch = db.session().get(Organization, uuid.UUID(child))
    assert branch.parent_organization_id == uuid.UUID(parent)
    head = db.session().get(Organization, uuid.UUID(parent))
    assert (head.kind, head.hipaa_covered) == ("clinic", True)


def test_language_codes_are_checked_and_attributes_of_unkept_tables_are_counted(app, tmp_path):
    doc = service_doc()
    doc["languages"][0]["code"] = "Spanish!"
    report = import_hsds(write(tmp_path, "lang.json", doc))
    assert [str(p) for p in report.dataset.errors] == [
        "lang.json:record 1/languages[0]: code: 'Spanish!' is not an ISO 639-1 or 639-3 "
        "language code"
    ]
    tables = {
        "organizations": ORG_CSV,
        "taxonomy_terms": "id,name,description\naaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa,Ramp,\n",
        "attributes": "id,link_id,taxonomy_term_id,link_entity\n"
        "99999999-9999-4999-8999-999999999999,66666666-6666-4666-8666-666666666666,"
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa,accessibility\n",
    }
    report = import_hsds(package(tmp_path / "pkg", tables))
    assert report.ok, report.lines()
    assert "Not stored (no place for it yet): attribute of accessibility ×1" in report.lines()


def test_fields_without_a_column_are_kept_and_a_new_input_replaces_them(app, tmp_path):
    funding = [{"id": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "source": "County grant"}]
    doc = service_doc(funding=funding, wait_time="Two weeks", x_vendor={"rank": 3})
    assert import_hsds(write(tmp_path, "first.json", doc)).ok
    db.session.remove()
    service = db.session().get(Service, uuid.UUID(doc["id"]))
    assert service.hsds_extra == {
        "funding": funding,
        "wait_time": "Two weeks",
        "x_vendor": {"rank": 3},
    }

    # A field left out is cleared; an array left out is kept, as nested lists are.
    report = import_hsds(write(tmp_path, "second.json", service_doc()))
    assert report.ok and report.updated["service"] == 1
    db.session.remove()
    assert db.session().get(Service, uuid.UUID(doc["id"])).hsds_extra == {"funding": funding}
    assert import_hsds(write(tmp_path, "third.json", service_doc(funding=[]))).ok
    db.session.remove()
    assert db.session().get(Service, uuid.UUID(doc["id"])).hsds_extra == {"funding": []}


def test_two_copies_of_a_location_must_agree_on_fields_without_a_column(app, tmp_path):
    doc = service_doc()
    location = dict(doc["service_at_locations"][0]["location"], accessibility=[{"id": "x"}])
    doc["service_at_locations"][0]["location"] = location
    doc["organization"]["locations"] = [dict(location, accessibility=[{"id": "y"}])]
    report = import_hsds(write(tmp_path, "copies.json", doc))
    assert [str(p) for p in report.dataset.errors] == [
        "copies.json:record 1/service_at_locations[0]/location: accessibility: differs from "
        "the copy at copies.json:record 1/organization/locations[0]"
    ]


def test_kept_fields_in_a_data_package_are_read_by_their_declared_type(app, tmp_path):
    service_id = "11111111-1111-4111-8111-111111111111"
    tables = {
        "organizations": ORG_CSV,
        "services": "id,organization_id,name,status,fees,funding,capacity\n"
        f'{service_id},22222222-2222-4222-8222-222222222222,Pantry,active,12,"[{{""id"": ""f""}}]",'
        "7\n",
    }
    fields = [{"name": n, "type": t} for n, t in (("funding", "array"), ("capacity", "integer"))]
    manifest = {
        "resources": [
            {"name": "organizations", "path": "organizations.csv"},
            {"name": "services", "path": "services.csv", "schema": {"fields": fields}},
        ]
    }
    report = import_hsds(package(tmp_path / "pkg", tables, manifest))
    assert report.ok, report.lines()
    db.session.remove()
    service = db.session().get(Service, uuid.UUID(service_id))
    # Undeclared columns are text, as every CSV cell is.
    assert service.hsds_extra == {"fees": "12", "funding": [{"id": "f"}], "capacity": 7}


def test_moving_a_location_or_renaming_an_organization_updates_the_search(app, tmp_path):
    from referrals.directory.search import SearchRow

    assert import_hsds(write(tmp_path, "in.json", [service_doc()])).ok
    moved = {
        "id": "22222222-2222-4222-8222-222222222222",
        "name": "Eastside Community Pantry",
        "description": "Food for the east side",
        "locations": [
            {
                "id": "66666666-6666-4666-8666-666666666666",
                "location_type": "physical",
                "latitude": 38.8,
                "longitude": -122.27,
            }
        ],
    }
    report = import_hsds(write(tmp_path, "organizations.json", [moved]))
    assert report.ok, report.lines()
    db.session.remove()
    rows = (
        db.session()
        .scalars(select(SearchRow).where(SearchRow.service_id == uuid.UUID(service_doc()["id"])))
        .all()
    )
    assert rows and {round(r.latitude, 2) for r in rows} == {38.8}
    assert all("community" in r.text for r in rows)


def test_languages_and_hours_given_at_the_place_count_for_the_service(app, tmp_path):
    from referrals.directory.search import SearchHours

    doc = service_doc(languages=[])
    link = doc["service_at_locations"][0]
    link["location"]["languages"] = [{"id": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "code": "vi"}]
    link["schedules"] = [
        {
            "id": "cccccccc-cccc-4ccc-8ccc-cccccccccccc",
            "freq": "WEEKLY",
            "byday": "MO,TU,WE,TH,FR,SA,SU",
            "opens_at": "00:00",
            "closes_at": "23:59",
        }
    ]
    assert import_hsds(write(tmp_path, "in.json", [doc])).ok
    db.session.remove()
    service = db.session().get(Service, uuid.UUID(doc["id"]))
    assert service.language_codes == ["vi"]
    hours = db.session().scalars(select(SearchHours).where(SearchHours.service_id == service.id))
    assert len(list(hours)) == 7
