"""Flask commands for the FHIR API's machine clients: register-api-client, deactivate-api-client."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click
from flask import Flask

from referrals.auth.actor import Actor
from referrals.errors import InvalidInput, ServiceError


def jwks_from_text(text: str) -> Any:
    """A JWKS from a file's text; a bare public key (a JWK with kty) becomes a one-key set."""
    data = json.loads(text)
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    return data


def register(app: Flask) -> None:
    @app.cli.command("register-api-client")
    @click.option("--name", required=True, help="What the client is, e.g. 'Sunrise EHR'.")
    @click.option("--org", "org_name", required=True, help="Exact name of its organisation.")
    @click.option(
        "--jwks",
        "jwks_file",
        required=True,
        type=click.File("r"),
        help="A JSON file with the client's public keys: a JWKS of RS384 or ES384 keys with kids.",
    )
    @click.option(
        "--scope",
        "scope",
        required=True,
        help='Space-separated scopes it may ask for, e.g. "system/*.read system/Task.write".',
    )
    def register_api_client(name: str, org_name: str, jwks_file: TextIO, scope: str) -> None:
        """Register a machine client of the FHIR API (SMART Backend Services); prints its
        client_id."""
        from referrals.fhir.oauth import register_client, token_endpoint_url

        try:
            jwks = jwks_from_text(jwks_file.read())
        except ValueError as err:
            click.echo(f"jwks: not JSON ({err}).", err=True)
            sys.exit(2)
        try:
            client = register_client(
                Actor.system("command line"), name=name, org_name=org_name, jwks=jwks, scopes=scope
            )
        except InvalidInput as err:
            click.echo(err.message, err=True)
            for field, messages in err.fields.items():
                click.echo(f"{field}: {' '.join(messages)}", err=True)
            sys.exit(2)
        click.echo(client.client_id)
        click.echo(
            f"Registered {client.name} for {org_name} with {' '.join(client.scopes)}. "
            f"Token endpoint: {token_endpoint_url()}",
            err=True,
        )

    @app.cli.command("deactivate-api-client")
    @click.argument("client_id")
    def deactivate_api_client(client_id: str) -> None:
        """Stop a machine client: no new tokens, and its current tokens stop working."""
        from referrals.fhir.oauth import deactivate_client

        try:
            client = deactivate_client(Actor.system("command line"), client_id)
        except ServiceError as err:
            click.echo(err.message, err=True)
            sys.exit(2)
        click.echo(f"Deactivated {client.name} ({client.client_id}).")
