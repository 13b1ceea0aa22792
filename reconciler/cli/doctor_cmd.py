"""`reconciler doctor`."""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import connection_options, fail, open_from
from reconciler.errors import DirectoryError, ReconcilerError


@main.command()
@connection_options
@click.option(
    "--base-dn",
    metavar="DN",
    help="the base_dn of directory.yaml (default: the server's only naming context)",
)
@click.option(
    "--canary/--no-canary",
    default=None,
    help="prove the settings with a temporary entry (default: only where cn=config cannot be "
    "read); --no-canary writes nothing at all",
)
@click.option(
    "--replica",
    multiple=True,
    metavar="URL",
    help="a read-only replica (consumer) to check too: its replication state and the reads a "
    "plan makes there (--read-from); nothing is written to it (repeatable)",
)
def doctor(
    base_dn: str | None, canary: bool | None, replica: tuple[str, ...], **connection: Any
) -> None:
    """Check that the LDAP server gives what the tool relies on.

    The project's schema; the ppolicy overlay, with a default policy that locks suspended
    accounts (pwdLockout), forces a change of an issued password (pwdMustChange) and asks for 8
    characters; lastbind; the equality indexes apply searches by; the bind DN's rights (read the
    base, write the people container and the lock entry); TLS. Settings are read from cn=config
    where the bind may (ldapi:// as root); elsewhere a temporary canary entry, always deleted,
    proves how the server behaves. Each problem is named with its remedy. Exit status 0 when
    nothing is missing, 1 otherwise. A comma-separated list of URLs (the providers) checks each
    server, and, when they replicate, each one's replication state: its contextCSN per
    serverID, and what it lacks of the others. --replica adds a read-only consumer, checked for
    its replication state and what a plan reads there.
    """
    from reconciler.directory.doctor import Peer, diagnose, healthy, report, survey
    from reconciler.directory.ldap import LdapDirectory
    from reconciler.directory.replicas import split_urls

    servers = [(u, False) for u in split_urls(str(connection.pop("directory_url")))]
    servers += [(u, True) for r in replica for u in split_urls(r)]
    all_good = True
    opened: dict[str, LdapDirectory] = {}
    peers: list[Peer] = []
    try:
        for url, _ in servers:
            if not url.lower().startswith(("ldap://", "ldaps://", "ldapi://")):
                fail(
                    ReconcilerError(
                        f"doctor checks LDAP servers: {url} is not an ldap://, ldaps:// or "
                        "ldapi:// URL"
                    )
                )
            try:
                # doctor's canary and No-Op checks are written with ldap3: it uses it whatever
                # --backend says (the read-only policy checks work through either library)
                directory = open_from({**connection, "directory_url": url, "backend": "ldap3"})
            except DirectoryError as error:
                click.echo(f"{url}\n  MISSING connection: {error}")
                all_good = False
                peers.append(Peer(url, None))
                continue
            assert isinstance(directory, LdapDirectory)
            opened[url] = directory
            try:
                peers.append(survey(directory, base_dn))
            except ReconcilerError as error:
                fail(error)
        for url, is_replica in servers:
            if url not in opened:
                continue
            try:
                findings = diagnose(opened[url], base_dn, canary, peers, replica=is_replica)
            except ReconcilerError as error:
                fail(error)
            for line in report(findings, url + (" (replica)" if is_replica else "")):
                click.echo(line)
            all_good = all_good and healthy(findings)
    finally:
        for directory in opened.values():
            directory.close()
    click.echo("All good." if all_good else "Something the reconciler relies on is missing.")
    sys.exit(0 if all_good else 1)
