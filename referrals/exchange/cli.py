"""`flask exchange ...`: our public key for peers, peers (one by one or from a file), and a
polling pass by hand."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from referrals.auth.actor import Actor
from referrals.errors import ServiceError


def register(app: Flask) -> None:
    group = AppGroup("exchange", help="Exchange referrals with FHIR peers (the exchange, CBOs).")

    @group.command("jwks")
    def jwks() -> None:
        """Print our public key (a JWKS) for a peer to register us as its client."""
        from referrals.exchange.client import public_jwks

        click.echo(json.dumps(public_jwks(), indent=2))

    @group.command("add-peer")
    @click.option("--name", required=True, help="What the peer is, e.g. 'Bay Area HIE'.")
    @click.option("--base-url", required=True, help="Its FHIR base, e.g. https://hie.example/fhir.")
    @click.option("--client-id", required=True, help="The client id it registered us under.")
    @click.option("--token-url", default="", help="Its token endpoint (default: discovered).")
    @click.option("--scope", default="system/*.read system/*.write", show_default=True)
    @click.option("--push/--no-push", default=True, show_default=True, help="Send it changes.")
    @click.option("--poll/--no-poll", default=False, show_default=True, help="Follow its Tasks.")
    @click.option(
        "--serves",
        multiple=True,
        help="An organisation it serves: 'Name' (works here) or 'Name=ID' (works on the peer, "
        "where it is Organization/ID). Repeat for each.",
    )
    def add_peer(
        name: str,
        base_url: str,
        client_id: str,
        token_url: str,
        scope: str,
        push: bool,
        poll: bool,
        serves: tuple[str, ...],
    ) -> None:
        """Add a FHIR peer and the organisations it serves."""
        from referrals.exchange.service import add_peer as add

        organizations: dict[str, str | None] = {}
        for item in serves:
            org, _, remote = item.partition("=")
            organizations[org.strip()] = remote.strip() or None
        try:
            peer = add(
                Actor.system("cli"),
                name=name,
                base_url=base_url,
                client_id=client_id,
                token_url=token_url,
                scope=scope,
                push=push,
                poll=poll,
                organizations=organizations,
            )
        except ServiceError as err:
            click.echo(f"Not added: {err.message}", err=True)
            for field, messages in getattr(err, "fields", {}).items():
                click.echo(f"  {field}: {' '.join(messages)}", err=True)
            sys.exit(1)
        click.echo(f"Added {peer.name} ({peer.base_url}).")

    @group.command("subscribe")
    @click.option("--peer", "peer_name", required=True, help="The peer's name.")
    def subscribe(peer_name: str) -> None:
        """Ask a peer to notify us when the Tasks we follow there change (rest-hook, id-only)."""
        from sqlalchemy import select

        from referrals.db import transaction
        from referrals.exchange.client import PeerError
        from referrals.exchange.models import ExchangePeer
        from referrals.exchange.notifications import subscribe as subscribe_to

        with transaction() as session:
            peer_id = session.scalar(select(ExchangePeer.id).where(ExchangePeer.name == peer_name))
        if peer_id is None:
            click.echo(f"No peer is called {peer_name}.", err=True)
            sys.exit(1)
        try:
            subscription = subscribe_to(Actor.system("cli"), peer_id)
        except PeerError as err:
            click.echo(f"Not subscribed: {err}", err=True)
            sys.exit(1)
        click.echo(f"Subscribed at {peer_name}: Subscription/{subscription}.")

    @group.command("poll")
    @click.option("--peer", "peer_name", default="", help="Only this peer (default: all polled).")
    def poll(peer_name: str) -> None:
        """One polling pass: mirror here what the peers' Tasks did since the last pass."""
        from sqlalchemy import select

        from referrals.db import transaction
        from referrals.exchange.client import PeerError
        from referrals.exchange.models import ExchangePeer
        from referrals.exchange.service import poll as poll_peer

        with transaction() as session:
            query = select(ExchangePeer).where(ExchangePeer.active)
            query = (
                query.where(ExchangePeer.name == peer_name)
                if peer_name
                else query.where(ExchangePeer.poll)
            )
            peers = [(p.id, p.name) for p in session.scalars(query)]
        if not peers:
            click.echo("No peer to poll.")
            return
        failed = False
        for peer_id, name in peers:
            try:
                counts = poll_peer(peer_id)
            except PeerError as err:
                click.echo(f"{name}: {err}", err=True)
                failed = True
                continue
            click.echo(
                f"{name}: Tasks changed there {counts['seen']}, mirrored here "
                f"{counts['mirrored']}, failed {counts['failed']}."
            )
        sys.exit(1 if failed else 0)

    @group.command("load-peers")
    @click.argument("file", required=False, default="")
    def load_peers(file: str) -> None:
        """Create or update peers by name from a JSON file (default: EXCHANGE_PEERS): all of
        them, or none when anything in the file is wrong."""
        from flask import current_app

        from referrals.exchange.service import load_peers as load

        path = file or current_app.config["SETTINGS"].exchange_peers
        if not path:
            click.echo("Name a peers file, or set EXCHANGE_PEERS to one.", err=True)
            sys.exit(1)
        try:
            with open(path, encoding="utf-8") as handle:
                entries = json.load(handle)
        except (OSError, ValueError) as err:  # missing, unreadable, or not JSON
            click.echo(f"{path} cannot be read as JSON: {err}", err=True)
            sys.exit(1)
        try:
            done = load(Actor.system("cli"), entries)
        except ServiceError as err:
            click.echo(f"{path}: nothing loaded. {err.message}", err=True)
            for field, messages in err.fields.items():
                click.echo(f"  {field}: {' '.join(messages)}", err=True)
            sys.exit(1)
        for line in done:
            click.echo(line)

    app.cli.add_command(group)
