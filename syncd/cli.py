"""The ``syncd`` command.

Every command that reads a config turns a ``ConfigError`` (or a
``SecretError``: a key or credential file that cannot be used) into one line
on stderr and exit status 2: an operator reading a journal needs the file, the
key and the problem, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import logging
import sys
import webbrowser
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import providers
from providers.base import ProviderError
from providers.model import Event, Window
from syncd import assemble, budget, config, detect, logs, secrets
from syncd.engine import CalendarSync, Policy, Report, judge
from syncd.progress import Progress
from syncd.store import sessions, transaction

log = logging.getLogger("syncd")
EXIT_CONFIG = 2


_GLOBAL_OPTIONS = frozenset({"-h", "--help", "-v", "--verbose", "--version"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    given = list(sys.argv[1:] if argv is None else argv)
    # argparse reports a missing COMMAND before an unknown option in front of it;
    # the option is the mistake to name.
    for arg in given:
        if not arg.startswith("-"):
            break
        if arg.split("=", 1)[0] not in _GLOBAL_OPTIONS:
            parser.error(f"unrecognized argument: {arg} (options of a command go after it)")
    args = parser.parse_args(given)
    logs.configure(args.verbose)
    try:
        return int(args.func(args))
    except config.ConfigError as error:
        print(f"syncd: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except secrets.SecretError as error:
        print(f"syncd: secret error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `syncd explain | head`: the reader left, nothing to report
        sys.stderr.close()
        return 141


def _version() -> str:
    """The installed distribution's version: the one number an admin and a bug report share."""
    try:
        return importlib.metadata.version("syncd")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd", description="Shared agendas for 1:1 meetings, in the calendar invite."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", type=Path, default=Path("syncd.toml"))
        return sub

    run = command("run", "Run the daemon: serve the agenda pages and keep calendars in sync.")
    run.add_argument(
        "--role",
        choices=["all", "worker", "web"],
        default="all",
        help="all (default): web and sync in one process; worker: sync only; web: serve only",
    )
    run.add_argument(
        "--stop-channels",
        action="store_true",
        help="on exit, stop the push channels of this process's calendars (decommissioning)",
    )
    run.set_defaults(func=cmd_run)

    sync_once = command("sync-once", "Sync every calendar once and print a summary.")
    sync_once.add_argument(
        "--dry-run",
        action="store_true",
        help="read and plan, write nothing, and list every write it would make",
    )
    sync_once.set_defaults(func=cmd_sync_once)

    explain = command("explain", "Print the 1:1 verdict and its reason for every event.")
    explain.add_argument("--calendar", action="append", help="only this calendar (repeatable)")
    explain.set_defaults(func=cmd_explain)

    web = command("web", "Serve the agenda pages, the JSON API and the provider webhooks.")
    web.set_defaults(func=cmd_web)

    migrate = command("migrate", "Create or upgrade the database schema.")
    migrate.set_defaults(func=cmd_migrate)

    status = command(
        "status",
        "Show every calendar's sync state from the database (exit 1: a calendar needs "
        "re-authorisation or failed its last syncs in a row).",
    )
    status.add_argument("--json", action="store_true", help="a machine-readable list")
    status.set_defaults(func=cmd_status)

    doctor = command("doctor", "Check config, key file, database and providers (exit 1: a FAIL).")
    doctor.set_defaults(func=cmd_doctor)

    keygen = command("keygen", "Write a new key for secrets at rest to syncd.key_file.")
    keygen.set_defaults(func=cmd_keygen)

    links = command("links", "Print the agenda links the upcoming invites carry.")
    links.add_argument("--calendar", metavar="ADDRESS", help="only the invites in this calendar")
    links.set_defaults(func=cmd_links)

    backup = command("backup", "Write a consistent copy of the SQLite database to FILE.")
    backup.add_argument("file", type=Path, metavar="FILE", help="a new file (mode 0600)")
    backup.set_defaults(func=cmd_backup)

    auth = command("auth", "Authorize syncd to one person's calendar (single-user accounts).")
    auth.add_argument(
        "provider",
        nargs="?",
        choices=providers.NAMES,
        help="the account's provider (optional: the account names it)",
    )
    auth.add_argument("--account", required=True, metavar="NAME", help="the [[accounts]] name")
    auth.add_argument(
        "--no-browser", action="store_true", help="print the address instead of opening a browser"
    )
    auth.set_defaults(func=cmd_auth)

    demo = commands.add_parser(
        "demo",
        help="Run syncd on a seeded organization on the bundled Google and Graph emulators.",
    )
    demo.add_argument(
        "--dir", type=Path, default=Path("demo"), help="where it writes its config and database"
    )
    demo.add_argument(
        "--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="where to serve the agendas"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def _now() -> datetime:
    return datetime.now(UTC)


def sync_all(settings: config.Settings, now: datetime, progress: Progress | None = None) -> Report:
    """One pass over every calendar of every account; failures stay per calendar."""
    policy = assemble.policy(settings)
    factory = sessions(assemble.store(settings))
    total = Report()
    for account in settings.require_accounts():
        with assemble.connected(account, settings) as conn:
            syncer = CalendarSync(conn.provider, factory, policy, account=account.name)
            if progress is not None:
                progress.expect(len(conn.calendars))
            for address in conn.calendars:
                try:
                    report = syncer.sync(address, now)
                except Exception as error:  # one calendar's bug never stops the others
                    log.exception("sync of %s failed", address)
                    report = Report(calendars=1)
                    report.fail(address, error)
                total.merge(report)
                if progress is not None:
                    progress.update(report)
    return total


def format_report(report: Report) -> str:
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items()))
    lines = [
        f"calendars: {report.calendars}  events seen: {report.events_seen}  "
        f"1:1s: {report.one_on_ones}  meetings: {len(report.meetings)}  "
        f"writes: {report.writes}" + (f" (planned {report.planned})" if report.planned else ""),
        f"skipped: {skipped or 'none'}",
        f"errors: {len(report.errors) or 'none'}",
    ]
    lines.extend(f"  {error}" for error in report.errors)
    if report.would_write:
        lines.append(f"dry run: {len(report.would_write)} write(s) planned, none made")
        lines.extend(f"  {line}" for line in report.would_write)
    if report.attendee_mails or report.deferred:
        verb = "would mail" if report.would_write else "mailed"
        lines.append(
            f"attendee mails: the invite writes {verb} {report.attendee_mails}; "
            f"{report.deferred} rewrite(s) wait for the mail budget"
        )
    return "\n".join(lines)


def cmd_links(args: argparse.Namespace) -> int:
    from syncd import links, status

    settings = config.load(args.config)
    try:
        engine = status.open_database(settings)
    except status.Unavailable as error:
        print(f"syncd: links: {error}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with transaction(sessions(engine)) as session:
            found = links.in_invites(session, settings.syncd.base_url, _now(), args.calendar)
    finally:
        engine.dispose()
    if not found:
        where = f" in {args.calendar}" if args.calendar else ""
        print(f"no upcoming invite{where} carries an agenda link yet")
    for link in found:
        print(link.line())
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from syncd.backup import BackupError, backup

    settings = config.load(args.config)
    try:
        pages = backup(settings, args.file)
    except BackupError as error:
        print(f"syncd: backup: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"backed up {pages} pages to {args.file}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from syncd import runtime

    settings = config.load(args.config)
    return runtime.run(settings, role=args.role, stop_channels=args.stop_channels)


def cmd_sync_once(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    if args.dry_run:
        settings = dataclasses.replace(
            settings, syncd=settings.syncd.model_copy(update={"dry_run": True})
        )
    with Progress() as progress:  # a bar if stderr is a terminal, else log lines
        report = sync_all(settings, _now(), progress)
    print(format_report(report))
    return 1 if report.errors else 0


def cmd_explain(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    policy = assemble.policy(settings)
    now = _now()
    window = Window(
        now - timedelta(days=settings.sync.past_days),
        now + timedelta(days=settings.sync.window_days),
    )
    failed = False
    wanted = {address.casefold() for address in args.calendar or ()}
    watched: set[str] = set()
    for account in settings.require_accounts():
        with assemble.connected(account, settings) as conn:
            for address in conn.calendars:
                watched.add(address.casefold())
                if wanted and address.casefold() not in wanted:
                    continue
                print(address)
                try:
                    events = [
                        event
                        for page in conn.provider.changes(address, None, window)
                        for event in page.events
                    ]
                except ProviderError as error:
                    failed = True
                    print(f"  error: {type(error).__name__}: {error}")
                    continue
                for event in sorted(events, key=lambda e: e.start):
                    print("  " + explain_line(event, judge(event, policy)))
                print("  " + mail_line(conn.provider.mails_attendees, policy))
    unknown = sorted(wanted - watched)
    if unknown:
        print(
            f"syncd: explain: no account watches {', '.join(unknown)} "
            f"({len(watched)} calendar(s) are watched; `syncd status` lists them)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return 1 if failed else 0


def mail_line(mails_attendees: bool, policy: Policy) -> str:
    """What a write to an invite on this calendar costs its attendees."""
    if not mails_attendees:
        return "invite writes mail nobody: every agenda change reaches the invite at once"
    lead = int(policy.mail_budget.lead.total_seconds() // 60)
    return (
        "invite writes mail the attendees: per occurrence at most "
        f"{budget.MAX_MAILS} (first block, carry-over, one refresh within {lead} min "
        "of the start); `syncd sync-once --dry-run` counts what a pass would send"
    )


def explain_line(event: Event, verdict: detect.Verdict) -> str:
    if event.recurring:
        kind = "series"
    elif event.series_id:
        kind = "one of a series"
    else:
        kind = "single"
    return (
        f"{event.start:%Y-%m-%d %H:%M}Z  {event.title[:40]:<40}  {kind:<15}  "
        f"{verdict.reason.value:<22} {verdict.detail}"
    )


def cmd_web(args: argparse.Namespace) -> int:
    """The web role alone: pages, API and webhooks, no sync (``syncd run --role web``)."""
    from syncd import runtime

    return runtime.run(config.load(args.config), role="web")


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    assemble.store(settings)
    print("database schema is current")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Reads the database only: no provider call, no migration (see ``syncd/status.py``)."""
    import json

    from syncd import status

    settings = config.load(args.config)
    now = _now()
    try:
        calendars = status.collect(settings, now)
    except status.Unavailable as error:
        print(f"syncd: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps([calendar.as_json() for calendar in calendars], indent=2))
    else:
        print(status.format_table(calendars, now))
    return status.exit_status(calendars)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Prints each check as it completes; a config that does not parse is one FAIL line."""
    from syncd import doctor

    checks: list[doctor.Check] = []
    for check in doctor.run(args.config, _now()):
        checks.append(check)
        print(check.line(), flush=True)
    return 1 if doctor.failed(checks) else 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """Prints the key's path and nothing else: the key stays in its file."""
    settings = config.load(args.config)
    value = settings.syncd.key_file.strip()
    if not value:
        raise config.ConfigError(
            settings.path,
            "syncd.key_file",
            'not set; name the file for the key (e.g. key_file = "syncd.key") and run '
            "syncd keygen again",
        )
    name = config.credential_name(value)
    if name is not None:
        raise secrets.SecretError(
            f"{settings.path}: syncd.key_file: {value} is a systemd credential, which syncd "
            f"cannot write; create it with `head -c 32 /dev/urandom | basenc --base64url | "
            f"systemd-creds encrypt --name={name} - /etc/credstore.encrypted/{name}` and load "
            f"it with LoadCredentialEncrypted={name}"
        )
    path = secrets.resolve(value, settings.directory, f"{settings.path}: syncd.key_file")
    secrets.generate_key(path)
    print(path)
    return 0


def cmd_auth(args: argparse.Namespace) -> int:
    """Single-user grants only; organization accounts never need a person's consent."""
    settings = config.load(args.config)
    try:
        account = settings.account(args.account)
    except KeyError:
        known = ", ".join(repr(a.name) for a in settings.accounts) or "none"
        raise config.ConfigError(
            settings.path, "accounts", f"no account named {args.account!r} (accounts: {known})"
        ) from None
    key = f"accounts[{settings.accounts.index(account)}]"
    if args.provider is not None and args.provider != account.provider:
        raise config.ConfigError(
            settings.path,
            f"{key}.provider",
            f"account {account.name!r} is a {account.provider} account; "
            f"`syncd auth {args.provider}` is for {args.provider} accounts",
        )

    def say(message: str, url: str | None = None) -> None:
        print(message, file=sys.stderr, flush=True)
        if url is not None and not args.no_browser:
            webbrowser.open(url, new=1)

    plugin = providers.plugin(account.provider)
    print(plugin.authorize(account, assemble.setup(account, settings), say))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Runs until Ctrl-C: the daemon on a seeded organization (see ``syncd/demo.py``)."""
    from syncd import demo

    if not args.verbose:  # the demo prints a line per sync itself; the log would repeat it
        logging.getLogger("syncd.runtime").setLevel(logging.WARNING)
    return demo.run(args.dir, args.listen)


if __name__ == "__main__":
    raise SystemExit(main())
