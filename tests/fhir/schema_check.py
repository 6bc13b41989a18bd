"""Validating a resource against HL7's FHIR R4 JSON schema (vendored in tests/fhir/schema).

The schema's root is a `oneOf` over every resource type, and so is each place a resource holds
other resources (`Bundle.entry.resource`, `DomainResource.contained`: `#/definitions/
ResourceList`). Checked as written, each of those tries all 146 resource types and, when the
resource is broken, says only that it matches none of them. Every resource definition requires
its own `resourceType` (a `const`), so at most one branch can ever match: we pick it with the
schema's own `discriminator` mapping and validate against that one definition. That is the same
verdict, found much faster, with errors that point inside the nested resource. A resource
whose `resourceType` is missing or unknown still goes through the plain `oneOf` and fails.

What the schema checks: element names (no unknown ones), JSON types of primitives and their
patterns (dates, ids, URIs...), the codes of element-specific required bindings (Task.status,
Patient.gender; not ServiceRequest.status, a plain `code`), and required elements. What it does
not: complex types declare no `"type": "object"`, so a string where a Reference belongs passes;
nor profiles, invariants or terminology."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

SCHEMA_FILE = Path(__file__).parent / "schema" / "fhir.r4.schema.json.gz"
SCHEMA_ID = "http://hl7.org/fhir/json-schema/4.0"  # the schema's own "id"

MAX_MESSAGE = 300  # characters of each problem; some messages quote the whole instance


def vendored_schema() -> dict[str, Any]:
    """The schema as published (see schema/README.md)."""
    with gzip.open(SCHEMA_FILE, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@cache
def schema() -> dict[str, Any]:
    """The vendored schema with one addition. It is the one HL7 published with R4 4.0.0: its
    FHIRVersion codes stop at "4.0.0". R4's technical correction 4.0.1, the R4 everyone
    implements and the one our CapabilityStatement declares, added "4.0.1" to that value set;
    we add it to each of those enums (CapabilityStatement.fhirVersion and three others)."""
    loaded = vendored_schema()
    for definition in loaded["definitions"].values():
        for element in definition.get("properties", {}).values():
            for enum in (element.get("enum"), element.get("items", {}).get("enum")):
                if enum and enum[-1] == "4.0.0":
                    enum.append("4.0.1")
    return loaded


@cache
def resource_types() -> dict[str, str]:
    """resourceType -> its definition's reference, from the schema's discriminator."""
    mapping = schema()["discriminator"]["mapping"]
    return {name: SCHEMA_ID + ref for name, ref in mapping.items()}


@cache
def _validator_class() -> type[Draft6Validator]:
    resource_list = schema()["definitions"]["ResourceList"]["oneOf"]
    branch = {ref["$ref"]: n for n, ref in enumerate(resource_list)}
    plain_one_of = Draft6Validator.VALIDATORS["oneOf"]

    def one_of(
        validator, one_of: list, instance: Any, subschema: dict
    ) -> Iterator[ValidationError]:
        if one_of is resource_list and isinstance(instance, dict):
            ref = schema()["discriminator"]["mapping"].get(instance.get("resourceType"))
            if isinstance(ref, str) and ref in branch:
                yield from validator.descend(
                    instance, {"$ref": SCHEMA_ID + ref}, schema_path=branch[ref]
                )
                return
        yield from plain_one_of(validator, one_of, instance, subschema)

    return validators.extend(Draft6Validator, {"oneOf": one_of})


@cache
def _registry() -> Registry:
    return Registry().with_resource(SCHEMA_ID, Resource(contents=schema(), specification=DRAFT6))


@cache
def validator(resource_type: str) -> Draft6Validator:
    """The validator for one resource type: its definition, not the root `oneOf`."""
    return _validator_class()({"$ref": resource_types()[resource_type]}, registry=_registry())


def problems(resource: dict[str, Any]) -> list[str]:
    """Each way the resource breaks the schema, as `JSON path: problem`."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if resource_type not in resource_types():
        return [f"$.resourceType: {resource_type!r} is not an R4 resource type"]
    found = []
    for error in validator(resource_type).iter_errors(resource):
        message = error.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        found.append(f"{error.json_path}: {message}")
    return sorted(found)


def assert_valid_r4(resource: dict[str, Any]) -> None:
    """Fail, naming each JSON path and what is wrong there, unless the resource is valid FHIR R4
    JSON by HL7's schema (and so is every resource it holds)."""
    found = problems(resource)
    if found:
        name = f"{resource.get('resourceType')}/{resource.get('id')}"
        listed = "\n".join(f"  {line}" for line in found)
        raise AssertionError(f"{name} is not valid FHIR R4 ({len(found)} problems):\n{listed}")
