"""Terminal output of the toolbox commands (rich): tables on stdout, progress on stderr."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from pushgate.toolbox.checkpoint import Checkpoint
from pushgate.wire.stats import CampaignCancelled, CampaignPage, CampaignReport


def stdout() -> Console:
    # soft_wrap: a long value (a token, a rule key) stays on one line when piped.
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def mask(token: str | None) -> str:
    """Enough of a device token to recognise it, not enough to use it."""
    if not token:
        return ""
    if len(token) <= 12:
        return token[:2] + "…"
    return f"{token[:6]}…{token[-4:]}"


def number(n: int | float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.1f}"


def percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.2f}%" if whole else "-"


# ---- users import ----


class ImportProgress:
    """A progress bar by bytes, with the rows and rows per second of this run."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task: TaskID | None = None
        self.started = 0.0

    def start(self, total_bytes: int, done_bytes: int, done_rows: int) -> None:
        self.progress.start()
        self.started = self.progress.get_time()
        self.task = self.progress.add_task(
            "import",
            total=max(total_bytes, 1),
            completed=done_bytes,
            rows=number(done_rows),
            rate="-",
        )

    def advance(self, done_bytes: int, done_rows: int, run_rows: int) -> None:
        assert self.task is not None
        elapsed = self.progress.get_time() - self.started
        rate = number(int(run_rows / elapsed)) if elapsed > 0 else "-"
        self.progress.update(self.task, completed=done_bytes, rows=number(done_rows), rate=rate)

    def stop(self) -> None:
        self.progress.stop()


@dataclass(frozen=True, slots=True)
class ImportSummary:
    checkpoint: Checkpoint
    target: str  # where the rows went
    run_rows: int
    seconds: float
    resumed_at: int | None
    already_done: bool
    notice: str | None

    def as_json(self) -> dict[str, Any]:
        c = self.checkpoint
        return {
            "file": c.file,
            "format": c.format,
            "partner": c.partner,
            "target": self.target,
            "rows": c.rows,
            "imported": c.imported,
            "updated": c.updated,
            "stored": c.stored,
            "devices": c.devices,
            "rejected": c.rejected,
            "reasons": dict(sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "rejects_file": c.rejects_file if c.rejected else None,
            "finished": c.finished,
            "resumed_after_row": self.resumed_at,
            "already_imported": self.already_done,
            "notice": self.notice,
            "run_rows": self.run_rows,
            "run_seconds": round(self.seconds, 3),
            "rows_per_second": round(self.run_rows / self.seconds) if self.seconds > 0 else None,
        }


def import_summary(console: Console, summary: ImportSummary) -> None:
    c = summary.checkpoint
    if summary.notice:
        console.print(f"[yellow]{summary.notice}[/]")
    if summary.already_done:
        console.print(
            f"{c.file} was imported whole before (checkpoint of"
            f" {_when(c.updated_at)}); nothing to do. --restart imports it again."
        )
    elif summary.resumed_at is not None:
        console.print(f"resumed after row {number(summary.resumed_at)}")
    table = Table(
        title=f"users import: {c.file} → {c.partner} ({summary.target})", show_header=False
    )
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    table.add_column("note")
    table.add_row("rows", number(c.rows), "read from the file")
    if c.stored:
        table.add_row("stored", number(c.stored), "over HTTP: new and existing users together")
    else:
        table.add_row("imported", number(c.imported), "new users")
        table.add_row("updated", number(c.updated), "existing users")
    table.add_row("devices", number(c.devices), "registered as SDK sessions")
    rejected_note = f"written to {c.rejects_file}" if c.rejected else ""
    table.add_row(
        "rejected", number(c.rejected), rejected_note, style="red" if c.rejected else None
    )
    if summary.run_rows and summary.seconds > 0:
        rate = summary.run_rows / summary.seconds
        table.add_row(
            "rate",
            f"{number(int(rate))}/s",
            f"this run: {number(summary.run_rows)} rows in {summary.seconds:.1f} s"
            f" ({number(int(rate * 60))} rows/min)",
        )
    console.print(table)
    if c.reasons:
        reasons = Table(title="rejected rows by rule")
        reasons.add_column("rule")
        reasons.add_column("rows", justify="right")
        for rule, count in sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            reasons.add_row(rule, number(count))
        console.print(reasons)


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---- send ----


@dataclass(frozen=True, slots=True)
class SendLine:
    to: str  # the identifier as given, kind:value
    result: str  # "sent", or the reason the user was not sent to
    platform: str = ""
    device_token: str = ""  # masked
    insider_id: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "to": self.to,
            "result": self.result,
            "platform": self.platform,
            "device_token": self.device_token,
            "insider_id": self.insider_id,
        }


def due(send_at: float | None, local_time: str | None) -> str | None:
    """When `pushgate send --at` / `--local-time` said the pushes are due; None: now."""
    if send_at is not None:
        return f"due {_when(send_at)}"
    if local_time is not None:
        return f"due at {local_time} on each user's clock"
    return None


def send_table(
    console: Console, camp_id: int, lines: Sequence[SendLine], due: str | None = None
) -> None:
    table = Table(title=f"camp_id {camp_id}: per-user result")
    table.add_column("to")
    table.add_column("result")
    table.add_column("platform")
    table.add_column("device token")
    table.add_column("insider_id")
    for line in lines:
        style = "green" if line.result == "sent" else "red"
        table.add_row(
            line.to,
            Text(line.result, style=style),
            line.platform,
            line.device_token,
            line.insider_id,
        )
    console.print(table)
    sent = sum(1 for line in lines if line.result == "sent")
    when = f", {due}" if due else ""
    console.print(
        f"{sent} of {len(lines)} queued for delivery{when}; `pushgate campaigns show {camp_id}`"
        " follows them."
    )


# ---- campaigns ----


# The counts of `campaigns list`, in the endpoint's order (fields of wire.CampaignSummary).
LIST_COUNTS = (
    "requested",
    "queued",
    "scheduled",
    "accepted",
    "failed",
    "cancelled",
    "expired",
    "delivered",
    "opened",
)


def campaign_list(console: Console, page: CampaignPage) -> None:
    table = Table(title=f"campaigns (page {page.page}, {page.total} in all)")
    table.add_column("camp_id")
    table.add_column("name")
    table.add_column("created (UTC)", no_wrap=True)
    for name in LIST_COUNTS:
        table.add_column(name, justify="right")
    table.add_column("open rate", justify="right")
    for c in page.campaigns:
        table.add_row(
            str(c.camp_id),
            c.name,
            c.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            *(number(getattr(c, name)) for name in LIST_COUNTS),
            f"{c.open_rate:.2f}%",
        )
    console.print(table)


def _bar(part: int, whole: int, width: int = 24) -> str:
    filled = round(width * part / whole) if whole else 0
    return "█" * filled + "·" * (width - filled)


def funnel_rows(report: CampaignReport) -> list[tuple[str, int, str, str]]:
    """(stage, count, rate, what the rate is of): the report's funnel, top to bottom."""
    f, r = report.funnel, report.rates
    return [
        ("requested", f.requested, "", ""),
        ("resolved", f.resolved, percent(f.resolved, f.requested), "of requested"),
        ("queued", f.queued, percent(f.queued, f.resolved), "of resolved"),
        ("scheduled", f.scheduled, percent(f.scheduled, f.queued), "of queued"),
        ("accepted", f.accepted, percent(f.accepted, f.queued), "of queued"),
        ("failed", f.failed, percent(f.failed, f.queued), "of queued"),
        ("cancelled", f.cancelled, percent(f.cancelled, f.failed), "of failed"),
        ("expired", f.expired, percent(f.expired, f.queued), "of queued"),
        ("pending", f.pending, percent(f.pending, f.queued), "of queued"),
        ("delivered", f.delivered, f"{r.delivery_rate:.2f}%", "of accepted"),
        ("opened", f.opened, f"{r.open_rate:.2f}%", "of delivered"),
    ]


def campaign_report(console: Console, report: CampaignReport) -> None:
    head = Text.assemble(
        (f"camp_id {report.camp_id}: {report.name}\n", "bold"),
        f"title: {report.title}\nmessage: {report.message}\n",
        f"image: {report.image_url or '-'}\n",
        f"created: {report.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC",
    )
    funnel = Table(title="funnel", box=box.SIMPLE_HEAD)
    funnel.add_column("stage")
    funnel.add_column("count", justify="right")
    funnel.add_column("rate", justify="right")
    funnel.add_column("")
    funnel.add_column("", style="cyan")
    top = max(report.funnel.requested, 1)
    for stage, count, rate, of in funnel_rows(report):
        funnel.add_row(stage, number(count), rate, of, _bar(count, top))
    parts: list[Any] = [head, funnel]
    if report.funnel.excluded:
        excluded = Table(title="not sent (excluded)", box=box.SIMPLE_HEAD)
        excluded.add_column("reason")
        excluded.add_column("users", justify="right")
        for reason, count in sorted(report.funnel.excluded.items(), key=lambda kv: -kv[1]):
            excluded.add_row(reason, number(count))
        parts.append(excluded)
    platforms = Table(title="per platform", box=box.SIMPLE_HEAD)
    for name in ("platform", "queued", "accepted", "failed", "expired"):
        platforms.add_column(name, justify="right" if name != "platform" else "left")
    for name, counts in report.platforms.items():
        platforms.add_row(
            name,
            *(number(v) for v in (counts.queued, counts.accepted, counts.failed, counts.expired)),
        )
    parts.append(platforms)
    if report.fail_records:
        fails = Table(title="fail records", box=box.SIMPLE_HEAD)
        fails.add_column("name")
        fails.add_column("count", justify="right")
        fails.add_column("platforms")
        fails.add_column("sample tokens")
        for record in report.fail_records:
            fails.add_row(
                record.name,
                number(record.count),
                ", ".join(f"{p} {n}" for p, n in sorted(record.platforms.items())),
                ", ".join(mask(t) for t in record.sample_tokens),
            )
        parts.append(fails)
    console.print(Panel(Group(*parts), title="campaign report", expand=False))


def cancelled(console: Console, answer: CampaignCancelled) -> None:
    table = Table(title="campaign cancelled")
    table.add_column("camp_id")
    table.add_column("cancelled", justify="right")
    table.add_column("note")
    table.add_row(
        str(answer.camp_id),
        number(answer.cancelled),
        "pushes not yet handed to a provider, now failed Cancelled",
    )
    console.print(table)


# ---- certs ----


def certs_table(console: Console, rows: Sequence[Mapping[str, Any]]) -> None:
    table = Table(title="provider credentials")
    for name in ("partner", "platform", "kind", "validated", "detail", "ref", "updated (UTC)"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row["partner"],
            row["platform"],
            row["kind"],
            Text("yes", style="green") if row["validated"] else Text("no", style="red"),
            row["detail"] or "",
            row["ref"] or "",
            _when(row["updated_at"]),
        )
    console.print(table)
