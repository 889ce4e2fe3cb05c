"""The `pushgate` command."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

import click

from pushgate import logs
from pushgate.config import Settings, check_port
from pushgate.startup_errors import check_serve, check_store, explained
from pushgate.store import partners as partner_ops
from pushgate.store.backend import connect_sync
from pushgate.store.models import PartnerSecrets
from pushgate.targeting import timing
from pushgate.toolbox import admin
from pushgate.toolbox import commands as toolbox
from pushgate.toolbox.admin import create_partner
from pushgate.toolbox.options import data_dir_option, database_url
from pushgate.toolbox.options import resolve_data_dir as _data_dir

_DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


STARTUP_FAILURE = 3  # uvicorn's status when the service could not start


class ConfigMistake(click.ClickException):
    """A configuration mistake (startup_errors.py): `Error: <one line>`, exit status 2, as for
    wrong usage; 1 stays for what a command refused or failed to do."""

    exit_code = 2


class Commands(click.Group):
    """`pushgate`: every command's configuration mistakes, wherever found, as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            mistake = explained(error)
            if mistake is None:
                raise
            raise ConfigMistake(str(mistake)) from None


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 1d, 12h, 30m or 3600")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@click.group(cls=Commands)
def main() -> None:
    """pushgate: self-hosted targeted push notifications."""


# The toolbox's workflows (docs/cli.md).
main.add_command(toolbox.users)
main.add_command(toolbox.send)
main.add_command(toolbox.campaigns)
main.add_command(toolbox.certs)
main.add_command(toolbox.demo)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8080).")
@data_dir_option
@click.option("--emulate", is_flag=True, default=None, help="Use built-in APNs/FCM/HMS emulators.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default=None,
    help="Serve the HTTP API, run delivery workers, or both (default).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Delivery processes (PUSHGATE_WORKERS; default: one per core the API processes leave)."
    " 1 delivers in this process; more run as child processes of it.",
)
@click.option(
    "--api-processes",
    type=int,
    default=None,
    help="Processes serving the API on one port (PUSHGATE_API_PROCESSES; default: half the"
    " cores, every core with --role api). This process is one of them.",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    emulate: bool | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    role: str | None,
    workers: int | None,
    api_processes: int | None,
) -> None:
    """Run the HTTP API and the delivery workers."""
    import uvicorn

    from pushgate.server import create_app, listening_socket, uvicorn_config

    settings = Settings.load(
        host=host,
        port=port,
        data_dir=data_dir,
        emulate=emulate,
        tls_cert=tls_cert,
        tls_key=tls_key,
        role=role,
        workers=workers,
        api_processes=api_processes,
    )
    listening = listening_socket(settings)
    try:
        check_serve(settings)  # what the startup would find, found here as one line
    except BaseException:
        listening.close()
        raise
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings, listening)
    server = uvicorn.Server(uvicorn_config(app, settings))
    server.run(sockets=[listening])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


@main.command()
@click.option(
    "--host", default="127.0.0.1", help="Address of the control routes and the emulators."
)
@click.option(
    "--port", type=int, default=8081, help="Port of the control routes (/emulator/v1/...)."
)
@data_dir_option
@click.option(
    "--apns-port", type=int, default=0, help="APNs production emulator port (default: a free one)."
)
@click.option(
    "--apns-sandbox-port",
    type=int,
    default=0,
    help="APNs sandbox emulator port (default: a free one).",
)
@click.option("--fcm-port", type=int, default=0, help="FCM emulator port (default: a free one).")
@click.option("--hms-port", type=int, default=0, help="HMS emulator port (default: a free one).")
def emulate(
    host: str,
    port: int,
    data_dir: Path | None,
    apns_port: int,
    apns_sandbox_port: int,
    fcm_port: int,
    hms_port: int,
) -> None:
    """Run the APNs, FCM and HMS emulators on their own, with their control routes.

    APNs listens twice: production and sandbox. With --data-dir, credentials stored there
    are accepted; point `pushgate serve` at the emulators with PUSHGATE_APNS_URL,
    PUSHGATE_APNS_SANDBOX_URL, PUSHGATE_FCM_URL, PUSHGATE_HMS_URL, PUSHGATE_HMS_TOKEN_URL,
    PUSHGATE_FCM_TOKEN_URL and PUSHGATE_PROVIDER_CA_FILE (see GET /emulator/v1/info; the
    CA is written to DATA_DIR/emulator-ca/).
    """
    from pushgate.emulation import StandaloneEmulators, serve_standalone

    for flag, value in (
        ("--port", port),
        ("--apns-port", apns_port),
        ("--apns-sandbox-port", apns_sandbox_port),
        ("--fcm-port", fcm_port),
        ("--hms-port", hms_port),
    ):
        check_port(flag, value)
    settings = Settings.load()
    if data_dir is not None:
        check_store(data_dir, settings.database_url)
    app = StandaloneEmulators(
        data_dir,
        host,
        (apns_port, fcm_port, hms_port),
        apns_sandbox_port,
        database_url=settings.database_url,
    )
    serve_standalone(app, port, settings.log_level, settings.log_format)


@main.command()
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Create or upgrade the database schema, then exit (`serve` also does it on start).

    The database is PUSHGATE_DATABASE_URL (PostgreSQL) if set, else SQLite in the data dir."""
    url = database_url()
    conn = connect_sync(_data_dir(data_dir), url)
    conn.close()
    click.echo(json.dumps({"backend": "postgresql" if url else "sqlite", "migrated": True}))


@main.group()
def partners() -> None:
    """Create and configure partners (tenants)."""


@partners.command("create")
@click.argument("name")
@data_dir_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the secrets as JSON (the default output)."
)
@click.option(
    "--emulator-credentials",
    is_flag=True,
    help="Install validated emulator credentials even if the data dir was not served with --emulate.",
)
def partners_create(
    name: str, data_dir: Path | None, as_json: bool, emulator_credentials: bool
) -> None:
    """Create a partner and print its secrets once."""
    settings = Settings.load()
    secrets = create_partner(
        _data_dir(data_dir),
        settings.database_url,
        name,
        emulator_credentials or settings.emulate,
    )
    _echo_secrets(secrets)


def _echo_secrets(secrets: PartnerSecrets) -> None:
    click.echo(
        json.dumps(
            {
                "partner": secrets.partner,
                "api_key": secrets.api_key,
                "request_token": secrets.request_token,
                "sdk_key": secrets.sdk_key,
            }
        )
    )


@partners.command("rotate-keys")
@click.argument("name")
@data_dir_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the secrets as JSON (the default output)."
)
def partners_rotate_keys(name: str, data_dir: Path | None, as_json: bool) -> None:
    """Replace a partner's api_key, request_token and sdk_key; print the new ones once.

    The old ones stop working on running servers within 2 seconds, and the partner's dashboard
    sessions end. The app's SDK key changes too: ship the new one in the app."""
    with admin.writing(_data_dir(data_dir), database_url()) as conn:
        try:
            secrets = partner_ops.rotate_keys(conn, name)
        except partner_ops.NoSuchPartner:
            raise click.ClickException(f"no partner named {name!r}") from None
    _echo_secrets(secrets)


@partners.command("update")
@click.argument("name")
@data_dir_option
@click.option(
    "--gfc-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Pushes per user per window; 0 turns the cap off.",
)
@click.option("--gfc-window", default=None, help="Cap window: 1d (default), 12h, 30m, or seconds.")
@click.option("--rate-limit", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option(
    "--advanced-rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Requests per minute with advanced pushes.",
)
@click.option(
    "--allow-ip", "allow_ips", multiple=True, help="CIDR the API key is accepted from (repeatable)."
)
@click.option("--allow-any-ip", is_flag=True, help="Accept the API key from any address again.")
@click.option(
    "--webhook-url",
    default=None,
    help="Send delivery events here (docs/api.md, Webhooks); prints the secret the first time.",
)
@click.option(
    "--timezone",
    "zone",
    default=None,
    help="IANA time zone (e.g. Europe/Istanbul) of users whose own zone is not known.",
)
@click.option(
    "--quiet-hours",
    default=None,
    help="No pushes in this window of each user's local time, e.g. 22:00-08:00; 'off' removes it.",
)
def partners_update(
    name: str,
    data_dir: Path | None,
    gfc_limit: int | None,
    gfc_window: str | None,
    rate_limit: int | None,
    advanced_rate_limit: int | None,
    allow_ips: tuple[str, ...],
    allow_any_ip: bool,
    webhook_url: str | None,
    zone: str | None,
    quiet_hours: str | None,
) -> None:
    """Change a partner's frequency cap, rate limits, allowed addresses, webhook, time zone
    and quiet hours."""
    import ipaddress

    for cidr in allow_ips:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{cidr!r} is not an address or CIDR", param_hint="--allow-ip"
            ) from None
    if zone is not None and timing.zone_named(zone) is None:
        raise click.BadParameter(f"{zone!r} is not an IANA time zone", param_hint="--timezone")
    window: tuple[int, int] | Literal["off"] | None = None
    if quiet_hours is not None:
        try:
            window = timing.parse_quiet_hours(quiet_hours) or partner_ops.QUIET_HOURS_OFF
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--quiet-hours") from None
    settings = Settings.load()
    if webhook_url is not None:
        admin.check_webhook_url(webhook_url, settings.webhook_allow_networks)
    conn = connect_sync(_data_dir(data_dir), database_url())
    try:
        partner = partner_ops.update_partner(
            conn,
            name,
            gfc_limit=gfc_limit,
            gfc_window=parse_duration(gfc_window) if gfc_window else None,
            rate_limit=rate_limit,
            advanced_rate_limit=advanced_rate_limit,
            allow_ips=[] if allow_any_ip else (list(allow_ips) if allow_ips else None),
            timezone=zone,
            quiet_hours=window,
        )
    except partner_ops.NoSuchPartner:
        raise click.ClickException(f"no partner named {name!r}") from None
    finally:
        conn.close()
    answer: dict[str, Any] = {
        "partner": partner.name,
        "gfc_limit": partner.gfc_limit,
        "gfc_window": partner.gfc_window,
        "rate_limit": partner.rate_limit,
        "advanced_rate_limit": partner.advanced_rate_limit,
        "allow_ips": list(partner.allow_ips),
        "timezone": partner.timezone,
        "quiet_hours": timing.format_quiet_hours(partner.quiet_hours),
    }
    if webhook_url is not None:
        answer["webhook"] = admin.set_webhook(
            _data_dir(data_dir), settings.database_url, name, webhook_url
        )
    click.echo(json.dumps(answer))


if __name__ == "__main__":
    main()
