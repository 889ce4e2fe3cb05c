"""The delivery queue carried by NATS JetStream, with the job table as the truth (docs/queue.md).

- Relay: jobs committed with an `outbox` row are published and then removed from the outbox.
  Dying in between republishes them: never lost, de-duplicated by the stream and by the claim
  below. A message is `<installation>.<job id>.<job created_at in µs>`, body and `Nats-Msg-Id`
  alike: the stream drops a republished copy of one job, never another job that has the same id
  (a database restored from a backup reuses ids; another installation has its own), and a
  worker acknowledges, and counts, a message of another installation or of a job its database
  does not have, without claiming anything.
- The stream belongs to one installation (its description names it): another installation
  pointed at the same stream prefix is refused at start with one line.
- Workers fetch ids from one durable pull consumer on a work-queue stream and lease those jobs
  in the database by id; a message whose job is already settled, or leased by a live worker, is
  acknowledged or put back until the job is due. After the outcome is recorded the message is
  acknowledged, or, for a retry, negatively acknowledged with the backoff delay.
- A worker that dies leaves its messages unacknowledged: JetStream redelivers them after
  `AckWait` (the lease), and the next claim finds the lease run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from pushgate import names
from pushgate.config import ENV_PREFIX, ConfigError
from pushgate.jobs import DEAD, DONE, EXPIRED, FAILED, QUEUED, DeliveryOutcome, Job, Settled
from pushgate.queue import table
from pushgate.store.db import Executor
from pushgate.wakeup import idle

log = logging.getLogger("pushgate.queue")
FINAL = (DONE, FAILED, EXPIRED, DEAD)
PUBLISH_CONCURRENCY = 256
RELAY_BATCH = 500
DUPLICATE_WINDOW_SECONDS = 120.0
# Every retry is a redelivery; the cap only stops a job that fails unexpectedly forever.
MAX_DELIVER = 1000
SWEEP_EVERY_SECONDS = 60.0
DEAD_LETTER = "dead-letter"  # the lease owner name of jobs given up after MaxDeliver
UNDELIVERABLE = "Undeliverable"
Recorder = Callable[[Job, str, DeliveryOutcome], Awaitable[bool]]


def undeliverable(deliveries: int) -> DeliveryOutcome:
    return DeliveryOutcome(DEAD, UNDELIVERABLE, f"delivered to workers {deliveries} times")


QUEUE_URL = f"{ENV_PREFIX}QUEUE_URL"
# The stream's description names its installation (metadata would need NATS 2.10).
OWNER_PREFIX = "pushgate jobs of installation "


def stream_owner(config: StreamConfig) -> str | None:
    """The installation a stream's description names; None for a stream made before owners."""
    description = config.description or ""
    return description.removeprefix(OWNER_PREFIX) if description.startswith(OWNER_PREFIX) else None


def message_id(installation: str, job_id: int, created_at: float) -> str:
    """A job's message (body and `Nats-Msg-Id`): unique per installation and per job
    incarnation, as a restored backup reuses job ids but not creation times."""
    return f"{installation}.{job_id}.{round(created_at * 1_000_000)}"


def parse_message(data: bytes) -> tuple[str | None, int]:
    """(installation, job id) of a message; None for a bare job id, as versions before
    installation ids published. ValueError for anything else."""
    text = data.decode("ascii")
    if "." not in text:
        return None, int(text)
    installation, job_id, _created = text.split(".")
    return installation, int(job_id)


def owner_error(stream: str, owner: str | None, installation: str) -> str | None:
    """Why this installation may not use `stream` (None: it may)."""
    if owner is None or owner == installation:
        return None
    return (
        f"{QUEUE_URL}: the stream {stream} carries the jobs of another pushgate installation"
        f" ({owner}; this one is {installation}): give this one its own"
        f" {ENV_PREFIX}QUEUE_PREFIX, or delete the stream (nats stream rm {stream}) if that"
        " installation is gone"
    )


async def check_reachable(
    url: str, timeout: int = 5, *, stream: str | None = None, installation: str | None = None
) -> None:
    """Before serving: a NATS server that cannot be reached, or has no JetStream, or whose
    `stream` belongs to another installation, is a ConfigError naming PUSHGATE_QUEUE_URL."""
    if "://" in url and url.partition("://")[0] not in ("nats", "tls", "ws", "wss"):
        raise ConfigError(f"{QUEUE_URL} must be a NATS URL: nats://host:4222")
    failures: list[Exception] = []

    async def quiet(error: Exception) -> None:  # nats-py would log each with a traceback
        failures.append(error)

    try:
        nc = await nats.connect(
            url,
            name="pushgate-check",
            connect_timeout=timeout,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # 0 would be: for ever
            error_cb=quiet,
        )
    except Exception as error:
        cause = failures[-1] if failures else error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(f"{QUEUE_URL}: no answer from NATS: {reason}") from None
    try:
        await nc.jetstream().account_info()
    except Exception as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ConfigError(
            f"{QUEUE_URL}: NATS answers but JetStream does not (start nats-server with -js):"
            f" {reason}"
        ) from None
    else:
        if stream is not None and installation is not None:
            try:
                info = await nc.jetstream().stream_info(stream)
            except NotFoundError:
                return
            refusal = owner_error(stream, stream_owner(info.config), installation)
            if refusal is not None:
                raise ConfigError(refusal)
    finally:
        await nc.close()


class JetStreamQueue:
    def __init__(
        self,
        url: str,
        db: Executor,
        prefix: str = names.DEFAULT_STREAM_PREFIX,
        ack_wait_seconds: float = 30.0,
        max_deliver: int = MAX_DELIVER,
    ) -> None:
        self.url = url
        self.db = db
        self.stream = names.jobs_stream(prefix)
        self.subject = names.jobs_subject(prefix)
        self.ack_wait = ack_wait_seconds
        self.max_deliver = max_deliver
        self.counters = dict.fromkeys(
            ("published", "duplicates", "skipped", "dead_letters", "unknown", "foreign"), 0
        )
        self.installation = ""  # this installation's id (table.installation_id), from start()
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._messages: dict[int, Msg] = {}  # job id -> its message, while leased here
        self.relay_wakeup = asyncio.Event()

    async def start(self) -> None:
        """Connect, and make the stream, or adopt one without an owner; ConfigError if the
        stream belongs to another installation."""
        self.installation = await self.db.run(table.installation_id)
        # Reconnect for as long as it takes: nats-py's default gives up after 60 attempts (about
        # two minutes), after which the relay and the workers would wait for a restart.
        self._nc = await nats.connect(self.url, name="pushgate", max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        config = StreamConfig(
            name=self.stream,
            description=OWNER_PREFIX + self.installation,
            subjects=[self.subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            with contextlib.suppress(Exception):  # another process made it meanwhile
                await self._js.add_stream(config)
            return
        owner = stream_owner(info.config)
        error = owner_error(self.stream, owner, self.installation)
        if error is not None:
            await self._nc.close()
            raise ConfigError(error)
        if owner is None:  # made by a version before owners
            info.config.description = OWNER_PREFIX + self.installation
            await self._js.update_stream(info.config)

    async def close(self) -> None:
        """Messages still unacknowledged come back to another worker after AckWait."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._nc is not None:
            await self._nc.close()

    async def check(self) -> None:
        """Raises unless the broker is connected and answers for the stream (/readyz)."""
        if self._nc is None or not self._nc.is_connected:
            raise ConnectionError("not connected to NATS")
        await self._js.stream_info(self.stream)

    # ---- relay: outbox -> stream ----

    async def relay_once(self) -> int:
        batch = await self.db.run(lambda c: table.outbox_batch(c, RELAY_BATCH, time.time()))
        if not batch:
            return 0
        slots = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def publish(job_id: int, created_at: float | None) -> None:
            if created_at is None:
                return  # the job is gone (purged): nothing to send
            message = message_id(self.installation, job_id, created_at)
            async with slots:
                ack = await self._js.publish(
                    self.subject, message.encode(), headers={"Nats-Msg-Id": message}
                )
                self.counters["duplicates" if ack.duplicate else "published"] += 1

        await asyncio.gather(*(publish(*entry) for entry in batch))
        ids = [job_id for job_id, _ in batch]
        await self.db.run(lambda c: table.outbox_done(c, ids))
        return len(ids)

    async def run_relay(self, idle_seconds: float = 0.25) -> None:
        swept_at = time.monotonic()
        while True:
            try:
                if time.monotonic() - swept_at > SWEEP_EVERY_SECONDS:
                    swept_at = time.monotonic()
                    await self.sweep()
                moved = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker or the database is away: the outbox keeps them
                log.exception("relay to JetStream failed; retrying")
                moved = 0
                await asyncio.sleep(1.0)
            if moved < RELAY_BATCH:
                await idle(self.relay_wakeup, idle_seconds)

    async def sweep(self) -> int:
        """Jobs overdue by more than the stream's de-duplication window plus a lease have no
        live message (a broker that lost messages in a failover): published again."""
        before = time.time() - DUPLICATE_WINDOW_SECONDS - self.ack_wait
        return await self.db.run(lambda c: table.sweep_into_outbox(c, before))

    # ---- workers: stream -> leased jobs ----

    async def _subscription(self) -> Any:
        if self._sub is None:
            self._sub = await self._js.pull_subscribe(
                self.subject,
                durable=names.JOBS_CONSUMER,
                stream=self.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    max_deliver=self.max_deliver,
                ),
            )
        return self._sub

    async def claim(
        self, worker: str, limit: int, lease_seconds: float, wait: float = 0.25
    ) -> list[Job]:
        sub = await self._subscription()
        try:
            messages: list[Msg] = await sub.fetch(limit, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either when idle
            return []
        by_id: dict[int, Msg] = {}
        for msg in messages:
            try:
                installation, job_id = parse_message(msg.data)
            except ValueError:
                await msg.term()  # not a pushgate message
                continue
            if installation not in (None, self.installation) or job_id in by_id:
                # Another installation's (a stream adopted from it), or a second message for
                # one job in this batch (an older incarnation's): nothing to claim for it.
                self.counters["foreign" if job_id not in by_id else "skipped"] += 1
                await msg.ack()
                continue
            by_id[job_id] = msg
        now = time.time()
        ids = sorted(by_id)
        claimed, others = await self.db.run(
            lambda c: table.claim_ids(c, ids, worker, lease_seconds, now)
        )
        for job in claimed:
            self._messages[job.id] = by_id.pop(job.id)
        await self._put_back(by_id, others, now)
        return claimed

    async def _put_back(
        self, messages: dict[int, Msg], states: dict[int, tuple[str, float]], now: float
    ) -> None:
        """Messages whose job was not leased: settled or unknown jobs are done with; a job not
        yet due (a retry, or another worker's live lease) comes back when it is."""
        for job_id, msg in messages.items():
            if job_id not in states:  # no such job in this database (a restored backup)
                self.counters["unknown"] += 1
                await msg.ack()
                continue
            state, due_at = states[job_id]
            self.counters["skipped"] += 1
            if state in FINAL:
                await msg.ack()
            else:
                await msg.nak(delay=max(0.1, due_at - now))

    async def settled(self, results: Sequence[Settled]) -> None:
        now = time.time()
        for job, outcome, recorded in results:
            msg = self._messages.pop(job.id, None)
            if msg is None or not recorded:
                # Not recorded: the lease ran out and another worker holds the job, through a
                # redelivery of this same message: its outcome decides what becomes of it.
                continue
            if outcome.state == QUEUED and outcome.retry_at is not None:
                await msg.nak(delay=max(0.1, outcome.retry_at - now))
            else:
                await msg.ack()

    async def depth(self) -> int:
        return await self.db.run(table.depth)

    # ---- dead letters: MaxDeliver reached ----

    async def watch_dead_letters(self, record: Recorder) -> None:
        """JetStream stops delivering a message after MaxDeliver and says so on an advisory
        subject; its job is then given up (`dead`, fail record `Undeliverable`) through the
        store's usual recording, and the message removed."""
        subject = names.max_deliveries_advisory(self.stream, names.JOBS_CONSUMER)

        async def handle(advisory: Msg) -> None:
            try:
                seq = int(json.loads(advisory.data)["stream_seq"])
                stored = await self._js.get_msg(self.stream, seq)
                _installation, job_id = parse_message(stored.data or b"0")
                claimed = await self._claim_when_due(job_id)
                for job in claimed:
                    await record(job, DEAD_LETTER, undeliverable(self.max_deliver))
                    self.counters["dead_letters"] += 1
                await self._js.delete_msg(self.stream, seq)
            except Exception:
                log.exception("handling a dead-letter advisory failed")

        await self._nc.subscribe(subject, cb=handle)

    async def _claim_when_due(self, job_id: int) -> list[Job]:
        """The advisory can come a moment before the last worker's lease in the database ends
        (the lease starts after the delivery): wait for it, within reason."""
        for _ in range(3):
            now = time.time()
            claim = functools.partial(
                table.claim_ids,
                ids=[job_id],
                worker=DEAD_LETTER,
                lease_seconds=self.ack_wait,
                now=now,
            )
            claimed, others = await self.db.run(claim)
            state, due_at = others.get(job_id, (DONE, 0.0))
            if claimed or state in FINAL:
                return claimed
            await asyncio.sleep(min(self.ack_wait, max(0.05, due_at - now + 0.05)))
        return []
