"""Floor of a pipelined write loop: python-ldap sending a plan's updates with no reconciler.

    python -m benchmarks.python_ldap_writes URL BIND_DN PASSWORD_FILE PLAN [IN_FLIGHT]

Each update of the saved plan `PLAN` (its attributes' values all strings: a plan of updates, as
`scripts/bench` makes with `--keep`) goes as one modify replacing those attributes, up to
`IN_FLIGHT` (default 32, apply's `--in-flight`) sent before their answers are read. What this
takes is what a client that only writes, on the one connection, cannot go below: slapd commits
one write at a time and syncs each (README "Performance"). Prints the number of writes and the
seconds from the first write sent to the last answer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ldap

from reconciler.model import Action
from reconciler.planning import planfile
from reconciler.text import all_strings


def main(
    url: str, bind_dn: str, password_file: str, plan_path: str, in_flight: int = 32
) -> tuple[int, float]:
    plan = planfile.load(Path(plan_path))
    writes = [
        (
            op.dn,
            [(ldap.MOD_REPLACE, c.attr, [str(v).encode() for v in c.after]) for c in op.changes],
        )
        for op in plan.operations
        if op.action is Action.UPDATE and all(all_strings(c.after) for c in op.changes)
    ]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    conn = ldap.initialize(url)
    conn.simple_bind_s(bind_dn, password)
    sent = 0
    start = time.perf_counter()
    for dn, changes in writes:
        conn.modify_ext(dn, changes)
        sent += 1
        if sent >= in_flight:
            conn.result3(ldap.RES_ANY, 1)
            sent -= 1
    while sent:
        conn.result3(ldap.RES_ANY, 1)
        sent -= 1
    took = time.perf_counter() - start
    conn.unbind_s()
    return len(writes), took


if __name__ == "__main__":
    args = sys.argv[1:]
    url, bind_dn, password_file, plan_path = args[:4]
    count, took = main(url, bind_dn, password_file, plan_path, *(int(a) for a in args[4:5]))
    print(f"{count} writes, {took:.3f} s from the first sent to the last answered")
