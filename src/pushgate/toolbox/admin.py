"""Operations on the data dir itself (or PUSHGATE_DATABASE_URL): no server needed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import click

from pushgate.emulation import install_emulator_credentials, is_emulated
from pushgate.store import credentials as creds
from pushgate.store import partners as partner_ops
from pushgate.store import webhooks
from pushgate.store.backend import ClosableDb, connect_sync
from pushgate.store.db import begin_write
from pushgate.store.models import Partner, PartnerSecrets
from pushgate.webhooks import addresses, events, signing


@contextlib.contextmanager
def connection(directory: Path, database_url: str | None) -> Iterator[ClosableDb]:
    conn = connect_sync(directory, database_url)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def writing(directory: Path, database_url: str | None) -> Iterator[ClosableDb]:
    """A write transaction on the store: committed when the block ends, rolled back if it
    raises."""
    with connection(directory, database_url) as conn:
        begin_write(conn)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def create_partner(
    directory: Path, database_url: str | None, name: str, emulator_credentials: bool
) -> PartnerSecrets:
    """`pushgate partners create`: the partner and, on emulated data dirs, validated
    emulator credentials for every platform."""
    with writing(directory, database_url) as conn:
        emulated = emulator_credentials or is_emulated(conn)
        # A key that does not open what is sealed stops the command before anything changes.
        box = creds.sealing_box(conn, directory) if emulated else None
        try:
            secrets = partner_ops.create_partner(conn, name)
        except partner_ops.PartnerExists:
            raise click.ClickException(f"a partner named {name!r} already exists") from None
        if box is not None:
            partner = partner_ops.partner_by_name(conn, name)
            assert partner is not None
            install_emulator_credentials(conn, box, partner.id)
    return secrets


def need_partner(conn: ClosableDb, name: str) -> Partner:
    partner = partner_ops.partner_by_name(conn, name)
    if partner is None:
        raise click.ClickException(f"no partner named {name!r} in this database")
    return partner


def check_webhook_url(url: str, networks: tuple[str, ...]) -> None:
    """The same rules as `PUT /api/v1/webhook`, before anything changes."""
    allowed = addresses.parse_networks(",".join(networks))
    try:
        asyncio.run(addresses.allowed_url(url, allowed))
    except addresses.RefusedUrl as refused:
        raise click.BadParameter(str(refused), param_hint="--webhook-url") from None


def set_webhook(
    directory: Path, database_url: str | None, name: str, url: str
) -> dict[str, object]:
    """`pushgate partners update NAME --webhook-url URL`: the partner's webhook to this URL (its
    events and secret kept if it had one); the answer holds the secret only when it is new. The
    caller has checked the URL (`check_webhook_url`) before changing anything."""
    with writing(directory, database_url) as conn:
        partner = partner_ops.partner_by_name(conn, name)
        if partner is None:
            raise click.ClickException(f"no partner named {name!r}")
        box = creds.sealing_box(conn, directory)
        existing = webhooks.read(conn, box, partner.id)
        secret = existing.secret if existing is not None else signing.new_secret()
        subscribed = existing.events if existing is not None else None
        webhooks.save(conn, box, partner.id, url, subscribed, secret, time.time())
    answer: dict[str, object] = {
        "url": url,
        "events": list(events.EVENT_TYPES if subscribed is None else subscribed),
    }
    if existing is None:
        answer["secret"] = secret
    return answer
