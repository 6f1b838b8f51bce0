"""``syncd run``: the long-running daemon, web server and scheduler loop in one process.

Roles split the two halves for scale-out: ``web`` replicas only serve pages,
the API and webhooks (a webhook only marks a calendar due in the database);
``worker`` processes only claim and sync due calendars. ``all`` (the
default) is both, the embedded setup.

Shutdown is cooperative: SIGTERM (or SIGINT) stops the claiming of new
work, lets in-flight syncs finish for at most ``shutdown_grace_seconds``,
gives back the leases of the calendars it finished and then stops the web
server. A sync cut short loses nothing: each step commits on its own and the
cursor is committed last, so the next sync repeats what was not recorded.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Literal

from sqlalchemy import exc as db_errors
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from providers.base import Listing, Person, ProviderError, Watchable
from syncd import assemble, config, people, push, scheduler
from syncd.bodies import Bodies
from syncd.engine import CalendarSync, Report
from syncd.health import Heartbeat
from syncd.metrics import Metrics, metered
from syncd.notify import Notifier
from syncd.progress import Progress
from syncd.store import sessions, transaction
from syncd.store.models import Calendar
from syncd.web.settings import WebSettings

log = logging.getLogger("syncd.runtime")

Role = Literal["all", "worker", "web"]
OnSync = Callable[[str, str, Report], None]

#: How often the loop wakes when nothing finishes: the latency of a push mark
#: or of a webhook-marked calendar, at worst.
IDLE_WAIT = 1.0
#: How far past a nudged mark the idle loop wakes, so the mark is due when it claims
#: (the mark was stamped before the nudge: a hair is enough).
WAKE_SLACK = 0.002
#: How often a directory account's people are listed again (joiners, leavers).
DIRECTORY_REFRESH = 3600.0
#: People written per transaction when a directory listing's names are kept.
DIRECTORY_BATCH = 500
#: Channels are (re)opened at most this often per calendar, when synced.
CHANNEL_TTL = timedelta(days=7)
#: A sync that lost a database race (two workers creating the same pair or
#: meeting at once) is simply repeated: the second attempt finds the row.
DB_RACE_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """A lease owner name that is unique across hosts, processes and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Totals:
    """What this process did since it started: the STATUS line and the summary."""

    syncs: int = 0
    writes: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    last: Report = field(default_factory=Report)

    def add(self, report: Report) -> None:
        self.syncs += report.calendars
        self.writes += report.writes
        self.errors += len(report.errors)
        self.last = report

    def line(self, in_flight: int) -> str:
        return (
            f"{self.syncs} syncs, {self.writes} writes, {self.errors} errors; "
            f"{in_flight} in progress"
        )


class Worker:
    """The scheduler loop: claims due calendars, syncs them in a bounded pool."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        syncers: Mapping[str, CalendarSync],
        webhooks: Mapping[str, str],
        sync_settings: config.Sync,
        *,
        owner: str | None = None,
        on_sync: OnSync | None = None,
        clock: Callable[[], datetime] = _now,
        beat: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.factory = factory
        self.syncers = dict(syncers)
        self.webhooks = dict(webhooks)
        self.owner = owner or worker_id()
        self.on_sync = on_sync
        self.clock = clock
        self.beat = beat
        self.metrics = metrics
        self.progress = progress  # the first pass over every calendar, then gone
        self.cadence = scheduler.Cadence.from_settings(sync_settings)
        self.concurrency = sync_settings.concurrency
        self.grace = float(sync_settings.shutdown_grace_seconds)
        self.totals = Totals()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sync")
        self._in_flight: dict[Future[Report], scheduler.Claim] = {}
        self._renewed = time.monotonic()
        #: The calendars each account watches now; a directory refresh replaces a set.
        self.watching: dict[str, frozenset[str]] | None = None
        self._wake = threading.Event()
        self._wake_lock = threading.Lock()
        #: monotonic times at which marks made in this process fall due, earliest first: a
        #: heap, not one time, so a later mark is not forgotten when an earlier one wakes us
        self._wake_at: list[float] = []

    def nudge(self, after: float) -> None:
        """A calendar was marked due ``after`` seconds from now (a webhook, an edit here).

        The idle loop is then awake at that moment rather than at its next
        step, so a push reaches the invite one debounce after it arrived.
        Thread-safe; called from the web server's threads.
        """
        at = time.monotonic() + max(0.0, after) + WAKE_SLACK
        with self._wake_lock:
            heapq.heappush(self._wake_at, at)  # popped as they fall due (``_nudged``)
        self._wake.set()

    def _idle(self, seconds: float) -> None:
        """Wait ``seconds``, or until the earliest nudge is due, whichever comes first."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self._nudged(now):
                return
            with self._wake_lock:
                at = self._wake_at[0] if self._wake_at else None
            end = deadline if at is None else min(deadline, at)
            if end <= now:
                return
            self._wake.wait(end - now)
            self._wake.clear()

    # -- one calendar ------------------------------------------------------------

    def _sync_one(self, claim: scheduler.Claim) -> Report:
        syncer = self.syncers[claim.account]
        started = time.monotonic()
        report = Report()
        state = claim.state
        for attempt in range(1, DB_RACE_ATTEMPTS + 1):
            try:
                report = syncer.sync(claim.address, self.clock(), claim.calendar_id, state)
                break
            except (db_errors.IntegrityError, db_errors.OperationalError) as error:
                if attempt == DB_RACE_ATTEMPTS:
                    report = self._crashed(claim, error)
                    break
                log.info("sync of %s lost a database race; repeating it", claim.address)
                state = None  # what the claim read may be what the lost attempt changed
            except Exception as error:  # a bug in one calendar's sync never stops the others
                log.exception("sync of %s failed", claim.address)
                report = self._crashed(claim, error)
                break
        if self.metrics is not None:
            self.metrics.record(report, claim.provider, time.monotonic() - started)
        self._keep_channel(claim)
        return report

    def _crashed(self, claim: scheduler.Claim, error: Exception) -> Report:
        """Record an unexpected failure like a provider's: kept, and backed off."""
        self.syncers[claim.account].record_failure(claim.calendar_id, self.clock(), error)
        report = Report(calendars=1)
        report.fail(claim.address, error)
        return report

    def _keep_channel(self, claim: scheduler.Claim) -> None:
        """Push channels are kept by whoever holds the calendar's lease: never two at once."""
        url = self.webhooks.get(claim.account)
        provider = self.syncers[claim.account].provider
        if not url or not isinstance(provider, Watchable):
            return
        try:
            push.keep_open(
                self.factory,
                provider,
                claim.calendar_id,
                claim.address,
                url,
                CHANNEL_TTL,
                self.clock(),
            )
        except ProviderError as error:
            log.warning("push channel for %s not opened: %s", claim.address, error)
        except Exception:  # a bug here must not take the daemon down: polling still works
            log.exception("push channel for %s not opened", claim.address)

    # -- the loop --------------------------------------------------------------------

    def _slots(self) -> scheduler.Slots:
        """Free slots per account: its provider's cap, and never every slot of the process.

        With several accounts, one account may hold at most all slots but one,
        so an account whose calls hang until they time out cannot starve the
        others.
        """
        running: dict[str, int] = {}
        busy: set[str] = set()
        for claimed in self._in_flight.values():
            running[claimed.account] = running.get(claimed.account, 0) + 1
            busy.add(claimed.address)
        free = self.concurrency - len(self._in_flight)
        share = self.concurrency - 1 if len(self.syncers) > 1 else self.concurrency
        per_account = {
            name: min(
                free,
                min(share, scheduler.provider_concurrency(syncer.provider.name))
                - running.get(name, 0),
            )
            for name, syncer in self.syncers.items()
        }
        return scheduler.Slots(per_account, frozenset(busy), limit=free)

    def _finish(self, done: set[Future[Report]]) -> None:
        finished = [(future, self._in_flight.pop(future)) for future in done]
        scheduler.release(self.factory, self.owner, [c.calendar_id for _, c in finished])
        for future, claimed in finished:
            try:
                report = future.result()
            except Exception as error:  # _sync_one records failures; this is its own bug
                log.exception("sync of %s failed outside the engine", claimed.address)
                report = Report(calendars=1)
                report.fail(claimed.address, error)
            self.totals.add(report)
            # While the first pass draws its bar on a terminal, a line per sync would
            # break it; the bar says the same (the journal gets every line).
            drawing = self.progress is not None and self.progress.terminal
            log.log(
                logging.DEBUG if drawing else logging.INFO,
                "synced %s: %d events, %d writes%s",
                claimed.address,
                report.events_seen,
                report.writes,
                f", error: {report.errors[0]}" if report.errors else "",
                extra={"account": claimed.account, "calendar": claimed.address},
            )
            if self.progress is not None:
                self.progress.update(report)
                if self.progress.complete:
                    self.progress.finish()
                    self.progress = None
            if self.on_sync is not None:
                try:
                    self.on_sync(claimed.account, claimed.address, report)
                except Exception:
                    log.exception("the on-sync callback failed")

    def _renew(self) -> None:
        if time.monotonic() - self._renewed < self.cadence.lease.total_seconds() / 3:
            return
        self._renewed = time.monotonic()
        ids = {claimed.calendar_id for claimed in self._in_flight.values()}
        kept = scheduler.renew(self.factory, self.owner, ids, self.clock() + self.cadence.lease)
        for lost in ids - kept:
            log.warning("lease on calendar %s was taken over", lost)

    def step(self, wait_seconds: float = IDLE_WAIT) -> None:
        """Claim what is due and fits, then wait for a sync to end or ``wait_seconds``."""
        self.beat()
        claims = scheduler.claim(
            self.factory,
            self.owner,
            self.clock(),
            self._slots(),
            self.cadence,
            list(self.syncers),
            self.watching,
        )
        for claimed in claims:
            self._in_flight[self._pool.submit(self._sync_one, claimed)] = claimed
        if self._in_flight:
            self._await_room(wait_seconds)
        elif wait_seconds > 0:
            self._idle(wait_seconds)
        self._renew()

    def _await_room(self, wait_seconds: float) -> None:
        """Wait until half the pool is free again (or ``wait_seconds``), giving back what ended.

        A claim costs a few statements whatever it takes, so under a backlog
        claiming for every single sync that ends would cost more than the
        settled polls it hands out; waiting for half the slots makes each
        claim take several. A pool that empties, or a nudge (a push mark, an
        edit), ends the wait early, so a pushed change still goes out at once.
        """
        deadline = time.monotonic() + wait_seconds
        room = max(1, self.concurrency // 2)
        while self._in_flight:
            left = deadline - time.monotonic()
            done, _ = wait(
                list(self._in_flight), timeout=max(0.0, left), return_when=FIRST_COMPLETED
            )
            if done:
                self._finish(done)
            if left <= 0 or self.concurrency - len(self._in_flight) >= room or self._nudged():
                return

    def _nudged(self, now: float | None = None) -> bool:
        """Whether a nudge is due now; those due are used up (the next claim takes them)."""
        now = time.monotonic() if now is None else now
        with self._wake_lock:
            due = bool(self._wake_at) and self._wake_at[0] <= now
            while self._wake_at and self._wake_at[0] <= now:
                heapq.heappop(self._wake_at)
            return due

    def run(self, stop: threading.Event, status: Callable[[str], None] = lambda _: None) -> None:
        shown = ""
        while not stop.is_set():
            try:
                self.step()
            except db_errors.DBAPIError as error:  # the database went away: keep trying
                log.error("scheduler: database error: %s", error.orig)
                stop.wait(5)
            line = self.totals.line(len(self._in_flight))
            if line != shown:
                status(line)
                shown = line
        self.drain()

    def drain(self) -> None:
        """Finish in-flight syncs within the grace period; give back what finished."""
        deadline = time.monotonic() + self.grace
        while self._in_flight:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "%d syncs still running after %.0fs; exiting without them",
                    len(self._in_flight),
                    self.grace,
                )
                break
            done, _ = wait(list(self._in_flight), timeout=left, return_when=FIRST_COMPLETED)
            self._finish(done)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stop_channels(self) -> None:
        """Stop every push channel on our accounts' calendars: asked for on decommission."""
        with transaction(self.factory) as session:
            rows = [
                (row.id, row.account, row.address)
                for row in session.scalars(
                    select(Calendar).where(Calendar.account.in_(list(self.syncers)))
                )
            ]
        for calendar_id, account, address in rows:
            provider = self.syncers[account].provider
            if isinstance(provider, Watchable):
                try:
                    push.stop_all(self.factory, provider, calendar_id, address)
                except ProviderError as error:
                    log.warning("channel of %s not stopped: %s", address, error)


# -- the process ---------------------------------------------------------------------


class WebServer:
    """uvicorn in a thread of its own; the main thread keeps the signals."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                proxy_headers=False,  # the peer must be the proxy itself (proxy-header sign-in)
                server_header=False,
                log_config=None,  # our logging setup, redaction included
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self._stopping = False
        for name in ("uvicorn.error", "uvicorn.access"):  # start-up and the access log
            server_log = logging.getLogger(name)
            if server_log.getEffectiveLevel() > logging.INFO:
                server_log.setLevel(logging.INFO)

    def start(self, timeout: float = 30.0) -> bool:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        self._stopping = True
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def supervise(self, stop: threading.Event) -> threading.Event:
        """Set ``stop`` if the server ends without being asked; the returned event says so.

        A daemon that syncs on without its pages and webhooks looks healthy
        to systemd; better to exit non-zero and let ``Restart=`` bring it back.
        """
        died = threading.Event()

        def watch() -> None:
            self.thread.join()
            if not self._stopping:
                log.error("the web server stopped unexpectedly; shutting down")
                died.set()
                stop.set()

        self.watcher = threading.Thread(target=watch, name="web-watch", daemon=True)
        self.watcher.start()
        return died


def address_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on host:port, said so an admin can act; None: free.

    uvicorn only logs "address already in use" and its thread ends; this says
    what to do instead, before anything else has started.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    "the port is in use by another program (another syncd?); pick a free one "
                    "in [web] listen, e.g. 127.0.0.1:8123 (the demo: make demo "
                    'DEMO_ARGS="--listen 127.0.0.1:8123")'
                )
            if error.errno == errno.EACCES:
                return "not allowed to listen there (ports below 1024 need privileges); use 8080"
            if error.errno == errno.EADDRNOTAVAIL:
                return "no network interface of this machine has that address"
            return error.strerror or str(error)
    return None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; finishing in-flight work", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def refresh_directories(
    factory: sessionmaker[Session], worker: Worker, conns: Mapping[str, assemble.Connected]
) -> None:
    """List directory accounts' people again: enroll joiners, stop claiming leavers.

    A leaver's calendar row stays, with the pair history and agendas it
    belongs to; only syncing stops.
    """
    for name, conn in conns.items():
        if not conn.account.directory:
            continue
        listed = assemble.refresh_calendars(conn)
        try:
            scheduler.enroll(factory, name, conn.provider.name, listed)
        except db_errors.DBAPIError as error:  # e.g. two workers enrolling at once
            log.warning("account %s: enrolling the directory failed: %s", name, error.orig)
            continue
        if worker.watching is not None:
            worker.watching = {**worker.watching, name: frozenset(listed)}
        record_directory(factory, conn)


def record_directory(factory: sessionmaker[Session], conn: assemble.Connected) -> None:
    """Keep the names and managers the account's last directory listing gave.

    Providers that read a directory are ``Listing``s (``listed_people``, set by
    their ``calendars``); a database that refuses costs names, not syncs.
    """
    listed: list[Person] = conn.provider.listed_people if isinstance(conn.provider, Listing) else []
    now = datetime.now(UTC)
    try:
        for start in range(0, len(listed), DIRECTORY_BATCH):
            batch = listed[start : start + DIRECTORY_BATCH]
            with transaction(factory) as session:
                names = {person.address: person.name for person in batch}
                people.remember(session, names, now, source=people.DIRECTORY)
                managers = {person.address: person.manager for person in batch}
                people.remember_managers(session, managers, now)
    except db_errors.DBAPIError as error:
        log.warning(
            "account %s: keeping the directory's names failed: %s", conn.account.name, error.orig
        )


def _refresh_hourly(
    factory: sessionmaker[Session],
    worker: Worker,
    conns: Mapping[str, assemble.Connected],
    stop: threading.Event,
) -> None:
    while not stop.wait(DIRECTORY_REFRESH):
        refresh_directories(factory, worker, conns)


def _beat(heartbeat: Heartbeat, notifier: Notifier) -> Callable[[], None]:
    """What the scheduler loop does each round to say it is alive: /readyz and systemd."""

    def beat() -> None:
        heartbeat.beat()
        notifier.watchdog()

    return beat


def run(
    settings: config.Settings,
    *,
    role: Role = "all",
    stop: threading.Event | None = None,
    on_sync: OnSync | None = None,
    stop_channels: bool = False,
    notifier: Notifier | None = None,
    web: WebSettings | None = None,
) -> int:
    """Serve and sync until stopped; the exit status.

    ``web``: the pages' settings instead of those ``[web]`` gives (``syncd demo``'s
    sign-in, which no config file can ask for).

    The first pass over every calendar shows a progress bar on a terminal
    (periodic log lines elsewhere); afterwards one log line per sync.
    """
    stop = stop or threading.Event()
    notifier = notifier or Notifier()
    factory = sessions(assemble.store(settings))  # migrations first: READY means usable
    metrics = Metrics(factory)
    heartbeat: Heartbeat | None = None
    with stop_on_signals(stop), ExitStack() as stack:
        worker: Worker | None = None
        if role in ("all", "worker"):
            policy = assemble.policy(settings)
            syncers: dict[str, CalendarSync] = {}
            webhooks: dict[str, str] = {}
            conns: dict[str, assemble.Connected] = {}
            bodies = Bodies()  # one bound for the process, whatever the number of accounts
            for account in settings.require_accounts():
                conn = stack.enter_context(assemble.connected(account, settings))
                syncers[account.name] = CalendarSync(
                    metered(conn.provider, metrics),
                    factory,
                    policy,
                    account=account.name,
                    bodies=bodies,
                )
                webhooks[account.name] = account.options.webhook()
                scheduler.enroll(factory, account.name, conn.provider.name, conn.calendars)
                record_directory(factory, conn)
                conns[account.name] = conn
            heartbeat = Heartbeat()
            enrolled = sum(len(conn.calendars) for conn in conns.values())
            worker = Worker(
                factory,
                syncers,
                webhooks,
                settings.sync,
                on_sync=on_sync,
                metrics=metrics,
                progress=Progress(enrolled) if enrolled else None,
                beat=_beat(heartbeat, notifier),
            )
            worker.watching = {name: frozenset(conn.calendars) for name, conn in conns.items()}
            # hints left by an earlier process may rest on another cadence
            scheduler.settle_hints(factory, worker.clock(), worker.cadence, list(conns))
            if any(conn.account.directory for conn in conns.values()):
                threading.Thread(
                    target=_refresh_hourly,
                    args=(factory, worker, conns, stop),
                    name="directory",
                    daemon=True,
                ).start()
        server: WebServer | None = None
        web_died: threading.Event | None = None
        if role in ("all", "web"):
            from syncd.web.app import create_app

            host, port = settings.web.address
            app = create_app(
                factory,
                web=web or assemble.web_settings(settings),
                heartbeat=heartbeat,
                registry=metrics.registry,
                on_mark=worker.nudge if worker is not None else None,
            )
            busy = address_problem(host, port)
            if busy is not None:
                print(f"syncd: web.listen: {settings.web.listen}: {busy}", flush=True)
                return 1
            server = WebServer(app, host, port)
            if not server.start():
                print(f"syncd: web.listen: cannot serve on {settings.web.listen}", flush=True)
                return 1
            stack.callback(server.stop)
            web_died = server.supervise(stop)
        notifier.ready(f"serving ({role})")
        log.info("syncd is running (%s)", role)
        if worker is None:
            while not stop.wait(IDLE_WAIT):
                notifier.watchdog()
        else:
            worker.run(stop, notifier.status)
            if stop_channels:
                worker.stop_channels()
        notifier.stopping("stopping")
    return 1 if web_died is not None and web_died.is_set() else 0
