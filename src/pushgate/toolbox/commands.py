"""The toolbox's click commands (docs/cli.md); `cli.py` adds them to `pushgate`.

The modules doing the work are imported inside each command, so that `pushgate serve`
does not pay for rich, httpx and the client at start.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from pushgate.toolbox.options import (
    DEFAULT_URL,
    api_key_option,
    data_dir_option,
    database_url,
    http_errors,
    import_url_option,
    need_api_key,
    resolve_data_dir,
    url_option,
)

# ---- users import ----


@click.group()
def users() -> None:
    """Bulk user data."""


@users.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="The partner (tenant) the users belong to.")
@data_dir_option
@import_url_option
@click.option(
    "--request-token",
    envvar="PUSHGATE_REQUEST_TOKEN",
    help="With --url: the partner's request token (or PUSHGATE_REQUEST_TOKEN).",
)
@click.option(
    "--sdk-key",
    envvar="PUSHGATE_SDK_KEY",
    help="With --url, for rows with devices: the partner's SDK key (or PUSHGATE_SDK_KEY).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file name."
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected rows go (default FILE.rejects.jsonl).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The progress file (default FILE.import-state.json).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per transaction (per checkpoint).",
)
@click.option("--restart", is_flag=True, help="Ignore the checkpoint: import from the start.")
@click.option("--delimiter", default=",", show_default=True, help="CSV field separator.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def users_import(
    file: Path,
    partner: str,
    data_dir: Path | None,
    url: str | None,
    request_token: str | None,
    sdk_key: str | None,
    fmt: str | None,
    rejects: Path | None,
    state: Path | None,
    batch_size: int,
    restart: bool,
    delimiter: str,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Import users (identifiers, attributes, devices) from a CSV or JSON-lines FILE.

    Stored by the same code as the user-upsert and SDK-session endpoints: directly in the
    database (the data dir, or PUSHGATE_DATABASE_URL) by default, or through a running
    server with --url. Interrupted imports continue after the last committed batch when run
    again. Columns and fields: docs/cli.md."""
    from pushgate.toolbox import importer, render
    from pushgate.toolbox.reader import FileError, detect_format
    from pushgate.toolbox.rows import HeaderError
    from pushgate.toolbox.sinks import DirectSink, HttpSink, Sink, SinkError

    if url and data_dir:
        raise click.UsageError("--url and --data-dir: choose one (the server has its own)")
    path = file.resolve()
    if len(delimiter) != 1:
        raise click.BadParameter("must be one character", param_hint="--delimiter")
    try:
        job = importer.ImportJob(
            path=path,
            fmt=detect_format(path, fmt),
            partner=partner,
            rejects=(rejects or importer.default_rejects(path)).resolve(),
            state=(state or importer.default_state(path)).resolve(),
            batch_size=batch_size,
            restart=restart,
            delimiter=delimiter,
        )
    except FileError as exc:
        raise click.UsageError(str(exc)) from None
    sink: Sink
    if url:
        if not request_token:
            raise click.UsageError("--url needs the partner's --request-token")
        from pushgate.toolbox.options import client

        http = client(url, partner_name=partner, request_token=request_token, sdk_key=sdk_key)
        sink, target = HttpSink(http, job.state), url
    else:
        from pushgate.store.backend import connect_sync
        from pushgate.toolbox.admin import need_partner

        directory = resolve_data_dir(data_dir)
        conn = connect_sync(directory, database_url())
        try:
            found = need_partner(conn, partner)
        except click.ClickException:
            conn.close()
            raise
        sink = DirectSink(conn, found.id, path)
        target = "postgresql" if database_url() else str(directory)
    err = render.stderr()
    progress = render.ImportProgress(err, enabled=not no_progress and err.is_terminal)
    try:
        with http_errors(url):
            outcome = importer.run_import(job, sink, progress)
    except KeyboardInterrupt:
        from pushgate.toolbox.checkpoint import read_file
        from pushgate.toolbox.reader import identify

        done = read_file(job.state)
        mine = done is not None and done.same_file(identify(path), job.fmt, partner)
        where = f"rows up to {done.rows:,} are" if done and mine else "every batch before"
        err.print(f"[yellow]interrupted[/]: {where} committed; the same command continues")
        sys.exit(130)
    except (FileError, HeaderError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    except SinkError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        sink.close()
    summary = render.ImportSummary(
        outcome.checkpoint,
        target,
        outcome.run_rows,
        outcome.seconds,
        outcome.resumed_at,
        outcome.already_done,
        outcome.notice,
    )
    if as_json:
        click.echo(json.dumps(summary.as_json()))
    else:
        render.import_summary(render.stdout(), summary)


# ---- send ----


@click.command()
@click.option(
    "--to",
    "targets",
    multiple=True,
    required=True,
    help="A recipient as KIND:VALUE: email:a@b.co, phone_number:+65..., uuid:u1, or a custom"
    " identifier name:value (repeatable).",
)
@click.option("--title", required=True)
@click.option("--message", required=True)
@click.option(
    "--camp-id",
    type=click.IntRange(min=1),
    default=None,
    help="The campaign's id (default: the current epoch second, a new campaign).",
)
@click.option("--camp-name", default="pushgate send", show_default=True)
@click.option("--image-url", default="", help="An image for the notification.")
@click.option("--ttl", type=click.IntRange(1, 2_419_200), default=None, help="Seconds.")
@click.option(
    "--at",
    "send_at",
    default=None,
    callback=lambda _ctx, _param, value: _at(value),
    metavar="WHEN",
    help="Deliver later: an RFC 3339 date-time with offset (2026-12-24T18:00:00+01:00), Unix"
    " seconds, or +30s, +10m, +2h, +1d from now; at most 30 days ahead.",
)
@click.option(
    "--local-time",
    default=None,
    callback=lambda _ctx, _param, value: _local_time(value),
    metavar="HH:MM",
    help="Deliver the next time each user's own clock shows HH:MM.",
)
@click.option(
    "--ignore-quiet-hours", is_flag=True, help="Deliver even within the partner's quiet hours."
)
@click.option("--partner", default=None, help="Checked against the API key with --data-dir.")
@url_option
@api_key_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def send(
    targets: tuple[str, ...],
    title: str,
    message: str,
    camp_id: int | None,
    camp_name: str,
    image_url: str,
    ttl: int | None,
    send_at: float | None,
    local_time: str | None,
    ignore_quiet_hours: bool,
    partner: str | None,
    url: str | None,
    api_key: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Send a push to users through a running server and print each user's result.

    The server's workers deliver it, now or at --at / --local-time; `pushgate campaigns show
    CAMP_ID` follows it, `pushgate campaigns cancel CAMP_ID` stops what has not gone out."""
    from pushgate.toolbox import render
    from pushgate.toolbox.options import client
    from pushgate.toolbox.send import Content, SendStopped, parse_target, send_each

    if send_at is not None and local_time is not None:
        raise click.UsageError("--at and --local-time: choose one (each says when to deliver)")
    key = need_api_key(api_key, partner)
    for target in targets:
        parse_target(target)  # every recipient is checked before the first request
    if partner and data_dir:
        _check_key_owner(data_dir, partner, key)
    content = Content(
        camp_id or int(time.time()),
        camp_name,
        title,
        message,
        image_url,
        ttl,
        send_at,
        local_time,
        ignore_quiet_hours,
    )
    due = render.due(send_at, local_time)
    with client(url, api_key=key) as http, http_errors(url):
        try:
            lines = send_each(http, targets, content)
        except SendStopped as stopped:
            if stopped.lines:
                render.send_table(render.stdout(), content.camp_id, stopped.lines, due)
            raise stopped.error from None
    if as_json:
        click.echo(
            json.dumps({"camp_id": content.camp_id, "results": [x.as_json() for x in lines]})
        )
    else:
        render.send_table(render.stdout(), content.camp_id, lines, due)


# Callbacks: a bad value is a usage error (exit 2) before any request.
def _at(value: str | None) -> float | None:
    from pushgate.toolbox.send import parse_at

    return None if value is None else parse_at(value, time.time())


def _local_time(value: str | None) -> str | None:
    from pushgate.toolbox.send import parse_local_time

    return None if value is None else parse_local_time(value)


def _check_key_owner(data_dir: Path, partner: str, key: str) -> None:
    from pushgate.store import partners as partner_ops
    from pushgate.toolbox.admin import connection

    with connection(data_dir, database_url()) as conn:
        owner = partner_ops.partner_by_secret(conn, "api_key", key)
    if owner is None or owner.name.lower() != partner.lower():
        raise click.UsageError(f"this API key is not {partner!r}'s in {data_dir}")


# ---- campaigns ----


@click.group()
def campaigns() -> None:
    """Campaign lists and reports: from a server with --api-key, or on the data dir with
    --partner; cancelling one, through a server."""


def _campaign_source(api_key: str | None, partner: str | None) -> tuple[str | None, str | None]:
    if api_key:
        return api_key, None
    if partner:
        return None, partner
    raise click.UsageError(
        "give --api-key (read from the server at --url) or --partner (read on the data dir)"
    )


@campaigns.command("list")
@api_key_option
@url_option
@click.option("--partner", default=None, help="Read on the data dir instead of a server.")
@data_dir_option
@click.option("--from", "start", default=None, help="First use at or after (ISO 8601 or epoch).")
@click.option("--to", "end", default=None, help="First use before (ISO 8601 or epoch).")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's JSON.")
def campaigns_list(
    api_key: str | None,
    url: str | None,
    partner: str | None,
    data_dir: Path | None,
    start: str | None,
    end: str | None,
    page: int,
    per_page: int,
    as_json: bool,
) -> None:
    """The partner's campaigns, newest first, with their funnel totals."""
    import msgspec

    from pushgate.toolbox import render

    key, name = _campaign_source(api_key, partner)
    if key:
        from pushgate.toolbox.options import client

        with client(url, api_key=key) as http, http_errors(url):
            found = http.campaigns(start=start, end=end, page=page, per_page=per_page)
    else:
        from pushgate.toolbox.admin import connection, need_partner
        from pushgate.toolbox.campaigns import page_on_db

        assert name is not None
        params = {"page": str(page), "per_page": str(per_page)}
        params |= {k: v for k, v in (("from", start), ("to", end)) if v}
        with connection(resolve_data_dir(data_dir), database_url()) as conn:
            try:
                found = page_on_db(conn, need_partner(conn, name).id, params)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
    else:
        render.campaign_list(render.stdout(), found)


@campaigns.command("show")
@click.argument("camp_id", type=click.IntRange(min=1))
@api_key_option
@url_option
@click.option("--partner", default=None, help="Read on the data dir instead of a server.")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's JSON.")
def campaigns_show(
    camp_id: int,
    api_key: str | None,
    url: str | None,
    partner: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """One campaign's report: the funnel with its rates, per platform, fail records."""
    import msgspec

    from pushgate.toolbox import render

    key, name = _campaign_source(api_key, partner)
    if key:
        from pushgate.toolbox.options import client

        with client(url, api_key=key) as http, http_errors(url):
            report = http.campaign_report(camp_id)
    else:
        from pushgate.toolbox.admin import connection, need_partner
        from pushgate.toolbox.campaigns import report_on_db

        assert name is not None
        with connection(resolve_data_dir(data_dir), database_url()) as conn:
            found = report_on_db(conn, need_partner(conn, name).id, camp_id)
        if found is None:
            raise click.ClickException(f"no campaign with camp_id {camp_id}")
        report = found
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
    else:
        render.campaign_report(render.stdout(), report)


@campaigns.command("cancel")
@click.argument("camp_id", type=click.IntRange(min=1))
@api_key_option
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's JSON.")
def campaigns_cancel(camp_id: int, api_key: str | None, url: str | None, as_json: bool) -> None:
    """Stop every push of the campaign not yet handed to a provider (scheduled, or queued and
    not taken by a worker): they end failed `Cancelled`. Through the server, whose workers
    hold the queue; pushes already sent are not recalled."""
    import msgspec

    from pushgate.toolbox import render
    from pushgate.toolbox.options import client

    key = need_api_key(api_key)
    with client(url, api_key=key) as http, http_errors(url):
        answer = http.cancel_campaign(camp_id)
    if as_json:
        click.echo(msgspec.json.encode(answer).decode())
    else:
        render.cancelled(render.stdout(), answer)


# ---- certs ----


@click.group()
def certs() -> None:
    """Provider credentials: upload through a server, list on the data dir."""


@certs.command("add")
@click.argument("provider", type=click.Choice(["apns", "firebase", "huawei"]))
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@api_key_option
@url_option
@click.option("--key-id", help="APNs .p8: the key's id.")
@click.option("--team-id", help="APNs .p8: the developer team's id.")
@click.option("--bundle-id", help="APNs: the app's bundle id (the push topic).")
@click.option("--password", envvar="PUSHGATE_P12_PASSWORD", help="APNs .p12: its password.")
@click.option("--app-id", help="Huawei: the app id.")
@click.option("--client-id", help="Huawei: the OAuth client id.")
@click.option(
    "--client-secret", envvar="PUSHGATE_HMS_CLIENT_SECRET", help="Huawei: the client secret."
)
@click.option(
    "--category", help="Huawei: the default android.category of every message (IM, FINANCE...)."
)
@click.option("--importance", help="Huawei: the default notification importance (NORMAL, LOW).")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's answer as JSON.")
def certs_add(
    provider: str,
    file: Path | None,
    api_key: str | None,
    url: str | None,
    key_id: str | None,
    team_id: str | None,
    bundle_id: str | None,
    password: str | None,
    app_id: str | None,
    client_id: str | None,
    client_secret: str | None,
    category: str | None,
    importance: str | None,
    as_json: bool,
) -> None:
    """Upload a provider credential to a running server, which validates it (a key that
    parses and a provider token that can be obtained) and uses it from then on.

    \b
    apns FILE.p8 --key-id K --team-id T --bundle-id B
    apns FILE.p12 --bundle-id B [--password P]
    firebase SERVICE-ACCOUNT.json
    huawei [FILE.json] [--app-id A --client-id C --client-secret S]
           [--category C] [--importance I]"""
    import msgspec

    from pushgate.toolbox import certs as bodies
    from pushgate.toolbox.options import client

    key = need_api_key(api_key)
    if provider != "huawei" and file is None:
        raise click.UsageError(f"{provider} needs FILE")
    if provider == "apns":
        assert file is not None
        options = {"key_id": key_id, "team_id": team_id, "bundle_id": bundle_id}
        body = bodies.apns_body(file, {**options, "password": password})
    elif provider == "firebase":
        assert file is not None
        body = bodies.firebase_body(file)
    else:
        options = {
            "app_id": app_id,
            "client_id": client_id,
            "client_secret": client_secret,
            "category": category,
            "importance": importance,
        }
        body = bodies.huawei_body(file, options)
    with client(url, api_key=key) as http, http_errors(url):
        result = http.call(http.endpoints.certificate(provider, msgspec.json.encode(body)))
    if as_json:
        click.echo(msgspec.json.encode(result).decode())
    else:
        click.echo(f"{provider}: {result.platform} credential validated and in use")


@certs.command("list")
@click.option("--partner", default=None, help="One partner (default: every partner).")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def certs_list(partner: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Every credential's platform, kind, validation and public name (never the secret),
    read on the data dir (or PUSHGATE_DATABASE_URL): the server has no endpoint that lists
    them."""
    from pushgate.store import credentials
    from pushgate.toolbox import render
    from pushgate.toolbox.admin import connection, need_partner

    with connection(resolve_data_dir(data_dir), database_url()) as conn:
        if partner:
            need_partner(conn, partner)
        rows = credentials.list_public(conn, partner)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    else:
        render.certs_table(render.stdout(), rows)


# ---- demo ----


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),  # checked by run_demo: config.usable_data_dir
    default=None,
    help="Keep the demo's data here (default: a temporary directory, removed at the end).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary data dir and the server log.")
def demo(data_dir: Path | None, keep: bool) -> None:
    """A first minute with pushgate: serve with emulators, create a partner, register
    iOS, Android and Huawei devices, send a push, watch it delivered, print the report."""
    from pushgate.toolbox import render
    from pushgate.toolbox.demo import run_demo

    console = render.stdout()
    try:
        run_demo(console, data_dir, keep)
    except (TimeoutError, RuntimeError) as exc:
        raise click.ClickException(f"the demo stopped: {exc}") from None


__all__ = ["DEFAULT_URL", "campaigns", "certs", "demo", "send", "users"]
