"""Operations on the data dir itself (or PUSHGATE_DATABASE_URL): no server needed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from pushgate.emulation import install_emulator_credentials, is_emulated
from pushgate.store import credentials as creds
from pushgate.store import partners as partner_ops
from pushgate.store.backend import ClosableDb, connect_sync
from pushgate.store.db import begin_write
from pushgate.store.models import Partner, PartnerSecrets


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
