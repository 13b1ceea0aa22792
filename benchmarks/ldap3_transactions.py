"""An experiment past the write floor: a plan's updates in LDAP transactions (RFC 5805).

    python -m benchmarks.ldap3_transactions URL BIND_DN PASSWORD_FILE PLAN [PER_TRANSACTION]

slapd commits and syncs one write at a time, which no pipelining passes (README "Performance").
In a transaction (Start Transaction `1.3.6.1.1.21.1`, each write with the critical txnSpec
control `1.3.6.1.1.21.2`, End Transaction `1.3.6.1.1.21.3`), slapd 2.5 holds the writes and
commits them together. Each update of the saved plan `PLAN` (its values all strings) goes as one
modify replacing its attributes, `PER_TRANSACTION` (default 100) to a transaction, one request at
a time. Through ldap3: slapd's transaction identifier is empty, and its txnSpec control must
carry a value present but empty (python-ldap sends one given as `encodedControlValue=b""`).
Prints the number of writes and the seconds from the first Start Transaction to the last End.
Not what `apply` does: a transaction that fails harms slapd 2.5's database and its replicas
(`benchmarks.ldap_transactions_unsafe`, README "Performance").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ldap3

from reconciler.model import Action
from reconciler.planning import planfile
from reconciler.text import all_strings

START, SPEC, END = "1.3.6.1.1.21.1", "1.3.6.1.1.21.2", "1.3.6.1.1.21.3"
#: End Transaction's request value: SEQUENCE { identifier OCTET STRING "" }, commit by default.
COMMIT_EMPTY_ID = b"\x30\x02\x04\x00"


def main(
    url: str, bind_dn: str, password_file: str, plan_path: str, per_transaction: int = 100
) -> tuple[int, float]:
    plan = planfile.load(Path(plan_path))
    writes = [
        (op.dn, {c.attr: [(ldap3.MODIFY_REPLACE, list(c.after))] for c in op.changes})
        for op in plan.operations
        if op.action is Action.UPDATE and all(all_strings(c.after) for c in op.changes)
    ]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    conn = ldap3.Connection(ldap3.Server(url), bind_dn, password, auto_bind=True)

    def done(what: str) -> None:
        if conn.result["result"] != 0:
            raise SystemExit(f"{what}: {conn.result['description']} {conn.result['message']}")

    start = time.perf_counter()
    for first in range(0, len(writes), per_transaction):
        conn.extended(START)
        done("Start Transaction")
        for dn, changes in writes[first : first + per_transaction]:
            conn.modify(dn, changes, controls=[(SPEC, True, b"")])
            done(f"modify {dn}")
        conn.extended(END, COMMIT_EMPTY_ID)
        done("End Transaction")
    took = time.perf_counter() - start
    conn.unbind()
    return len(writes), took


if __name__ == "__main__":
    args = sys.argv[1:]
    url, bind_dn, password_file, plan_path = args[:4]
    count, took = main(url, bind_dn, password_file, plan_path, *(int(a) for a in args[4:5]))
    print(f"{count} writes, {took:.3f} s from the first transaction started to the last ended")
