"""Why `apply` does not use LDAP transactions (RFC 5805) on Debian's slapd 2.5: what they would
gain, and the two ways a transaction that fails harms the directory.

    python -m benchmarks.ldap_transactions_unsafe [--work DIR] [--writes N]

Throwaway servers (the project's own, `reconciler.devtools`: two single ones and a replicated
set of three), on 127.0.0.1:

1. Speed: `N` modifies (default 1,000) on a server that syncs every commit, as a real one does,
   sent 32 in flight through python-ldap, outside transactions and then 100 to a transaction.
   slapd commits and syncs one write at a time outside a transaction; in one, once for them all.
2. A failed transaction corrupts the database: in one transaction, an add whose entry holds an
   attribute no entry of the database ever held, then an add refused (the DN is taken). slapd
   takes the transaction back, but keeps in memory the new attribute's number in the database's
   table of attribute descriptions, whose row it took back. The next add with that attribute
   (outside any transaction) is stored under a number the table on disk does not have: every
   read of it fails ("internal error in mdb_entry_decode"), and still after a restart (what is
   checked: a harm only in memory would go with the restart).
3. A failed transaction leaks to the replicas: on a provider of a replicated directory, one
   transaction of an add and a modify refused (no such entry). syncprov sends the add to the
   other servers as it is carried out, before the commit; the provider takes it back, the other
   provider and the consumer keep it, all three saying they are in sync (same contextCSN): an
   entry the client was told is not written, on two servers of three.

Each failure here is one any apply can meet: a DN taken or an entry gone by hand while it runs.
Prints what it found; exits 0 when slapd shows both harms, 3 when it no longer shows one of them
(a fixed slapd: time to look at transactions again); any other status is the script failing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ldap
import ldap.extop
from ldap.controls import LDAPControl

from benchmarks.ldap3_transactions import COMMIT_EMPTY_ID as COMMIT
from benchmarks.ldap3_transactions import END, SPEC, START
from reconciler.devtools.replicated import Replicated, search
from reconciler.devtools.throwaway import Slapd

#: The txnSpec control: its value present and empty. python-ldap sends it given as the encoded
#: value (`LDAPControl(oid, True, b"")` is the control's unencoded value: none is sent).
IN_TRANSACTION = [LDAPControl(SPEC, True, encodedControlValue=b"")]
SUFFIX = "dc=gov,dc=vn"


def bound(server: Slapd) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(server.root_dn, server.root_pw)
    return conn


def transaction(conn: ldap.ldapobject.LDAPObject, writes: Callable[[], None]) -> str:
    """Start a transaction, `writes()` in it, commit: the End's outcome in words."""
    conn.extop_result(conn.extop(ldap.extop.ExtendedRequest(START, None)))
    writes()
    try:
        conn.extop_result(conn.extop(ldap.extop.ExtendedRequest(END, COMMIT)))
    except ldap.LDAPError as error:
        return f"refused ({error.args[0].get('desc')}): nothing of it is written"
    return "committed"


def person(uid: str, **more: str) -> list[tuple[str, list[bytes]]]:
    attrs = {"objectClass": "inetOrgPerson", "uid": uid, "cn": uid, "sn": uid, **more}
    return [(name, [value.encode()]) for name, value in attrs.items()]


def speed(work: Path, count: int) -> None:
    server = Slapd(work / "speed", suffix=SUFFIX, dbnosync=False)
    server.start()
    try:
        conn = bound(server)
        for i in range(count):
            conn.add_s(f"uid=p{i},{SUFFIX}", person(f"p{i}"))
        for label, per in (("outside transactions", 0), ("100 to a transaction", 100)):
            start = time.perf_counter()
            for first in range(0, count, per or count):
                if per:
                    conn.extop_result(conn.extop(ldap.extop.ExtendedRequest(START, None)))
                sent = 0
                for i in range(first, min(count, first + (per or count))):
                    change = [(ldap.MOD_REPLACE, "title", [f"{label} {i}".encode()])]
                    conn.modify_ext(f"uid=p{i},{SUFFIX}", change, IN_TRANSACTION if per else None)
                    sent += 1
                    if sent >= 32:
                        conn.result3(ldap.RES_ANY, 1)
                        sent -= 1
                while sent:
                    conn.result3(ldap.RES_ANY, 1)
                    sent -= 1
                if per:
                    conn.extop_result(conn.extop(ldap.extop.ExtendedRequest(END, COMMIT)))
            print(f"  {count} modifies, 32 in flight, {label}: {time.perf_counter() - start:.3f} s")
    finally:
        server.stop()


def corruption(work: Path) -> bool:
    """Whether a failed transaction left entries no read can decode, after a restart too."""
    server = Slapd(work / "corruption", suffix=SUFFIX, dbnosync=False)
    server.start()
    try:
        conn = bound(server)
        conn.add_s(f"uid=taken,{SUFFIX}", person("taken"))

        def writes() -> None:
            conn.add_ext_s(f"uid=a,{SUFFIX}", person("a", title="t"), IN_TRANSACTION)
            conn.add_ext_s(f"uid=taken,{SUFFIX}", person("taken"), IN_TRANSACTION)

        print(
            f"  a transaction: an add with `title` (new here), an add of a DN taken: "
            f"{transaction(conn, writes)}"
        )
        conn.add_s(f"uid=b,{SUFFIX}", person("b", title="t"))
        print("  then, outside any transaction: an add with `title`: done")
        harmed = False
        for when in ("now", "after a restart"):
            if when != "now":
                server.restart()
                conn = bound(server)
            try:
                found = conn.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(uid=b)", ["title"])
                print(f"  reading it {when}: {found}")
            except ldap.OTHER as error:  # the server's own failure, not the connection's
                info = str(error.args[0].get("info"))
                harmed = when != "now" and "mdb_entry_decode" in info
                print(f"  reading it {when}: {info}")
        return harmed
    finally:
        server.stop()


def leak(work: Path) -> bool:
    """Whether a write of a failed transaction is on any server all the same."""
    with Replicated(work / "leak", suffix=SUFFIX) as servers:
        conn = bound(servers.provider1)

        def writes() -> None:
            conn.add_ext_s(f"uid=a,{SUFFIX}", person("a"), IN_TRANSACTION)
            change = [(ldap.MOD_REPLACE, "title", [b"t"])]
            conn.modify_ext_s(f"uid=gone,{SUFFIX}", change, IN_TRANSACTION)

        print(
            f"  on provider1, a transaction: an add, a modify of an entry not there: "
            f"{transaction(conn, writes)}"
        )
        conn.add_s(f"uid=after,{SUFFIX}", person("after"))  # a write that replicates after it
        print(f"  in sync (same contextCSN) after {servers.wait_in_sync(30):.2f} s")
        held = {}
        for name, server in zip(
            ("provider1", "provider2", "consumer"), servers.servers, strict=True
        ):
            held[name] = f"dn: uid=a,{SUFFIX}" in search(server, SUFFIX, ["1.1"]).splitlines()
            print(f"  {name} holds uid=a: {held[name]}")
        return any(held.values())


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of writes (1 or more)")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the servers (default: temporary)")
    parser.add_argument("--writes", type=positive, default=1000, metavar="N")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="reconciler-txn-"))
    try:
        print("1. speed, one server syncing every commit")
        speed(work, args.writes)
        print("2. a failed transaction, one server")
        corrupted = corruption(work)
        print("3. a failed transaction, a replicated directory")
        leaked = leak(work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"corrupts the database: {corrupted}; leaks to the replicas: {leaked}")
    return 0 if corrupted and leaked else 3


if __name__ == "__main__":
    sys.exit(main())
