"""Baseline: python-ldap's bare paged read of the attributes a plan reads
(`reconciler.attributes.READ`).

    python -m benchmarks.python_ldap_read URL BIND_DN PASSWORD_FILE BASE_DN

python-ldap as its documentation shows it (a paged search of 1,000 with
`ldap.controls.SimplePagedResultsControl`, `result3` per page, the garbage collector left alone),
counting the entries and keeping none. Prints the count.
"""

from __future__ import annotations

import sys

import ldap
from ldap.controls import SimplePagedResultsControl

from reconciler.attributes import READ


def main(url: str, bind_dn: str, password_file: str, base: str) -> int:
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    conn = ldap.initialize(url)
    conn.simple_bind_s(bind_dn, password)
    control = SimplePagedResultsControl(True, size=1000, cookie="")
    count = 0
    while True:
        msgid = conn.search_ext(
            base, ldap.SCOPE_SUBTREE, "(objectClass=*)", list(READ), serverctrls=[control]
        )
        _, data, _, controls = conn.result3(msgid)
        count += sum(1 for dn, _ in data if dn is not None)
        cookie = next(
            (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
            None,
        )
        if not cookie:
            break
        control.cookie = cookie
    conn.unbind_s()
    return count


if __name__ == "__main__":
    print(main(*sys.argv[1:5]))
