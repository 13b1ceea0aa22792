"""Baseline: ldap3's bare paged read of the attributes a plan reads
(`reconciler.attributes.READ`).

    python -m benchmarks.ldap3_read URL BIND_DN PASSWORD_FILE BASE_DN

ldap3 as its documentation shows it (SYNC strategy, paged search of 1,000, the garbage collector
left alone), counting the entries and keeping none. Prints the count.
"""

from __future__ import annotations

import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3

from reconciler.attributes import READ

PAGED_RESULTS = "1.2.840.113556.1.4.319"


def main(url: str, bind_dn: str, password_file: str, base: str) -> int:
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    conn = ldap3.Connection(
        ldap3.Server(url, get_info=ldap3.NONE),
        user=bind_dn,
        password=password,
        client_strategy=ldap3.SYNC,
        auto_bind=True,
    )
    cookie: bytes | None = None
    count = 0
    while True:
        conn.search(
            base,
            "(objectClass=*)",
            search_scope=ldap3.SUBTREE,
            attributes=list(READ),
            paged_size=1000,
            paged_cookie=cookie,
        )
        for response in conn.response:
            if response.get("type") == "searchResEntry":
                count += 1
        cookie = conn.result["controls"][PAGED_RESULTS]["value"]["cookie"]
        if not cookie:
            break
    conn.unbind()
    return count


if __name__ == "__main__":
    print(main(*sys.argv[1:5]))
