"""Trust nothing that arrives (issue 15): an agency file that reaches for an entry it does not own,
an entry outside the tool's management, a plan file edited and re-sealed, a second apply, an
address taken between plan and apply, a hand edit during an interrupted rename, existing damage.
Every case on a real throwaway slapd (and the LDIF file directory where it behaves the same)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from reconciler.applying.lock import Lock
from reconciler.attributes import READ
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, open_directory
from reconciler.errors import (
    DirectoryError,
    EntryExists,
    InventoryError,
    LockHeld,
    Refused,
    StalePlan,
)
from reconciler.model import Action, Entry, Operation, Plan
from reconciler.planning import planfile, render
from reconciler.rules import regulations

from . import scenario, tamper
from .helpers import PassThrough, admin_connection, ldapwhoami, run_cli
from .scenario import BASE_HG
from .test_convergence import converge as converged

DOMAIN = "hagiang.gov.vn"


def add(directory: Directory, dn: str, **attrs: Any) -> None:
    values = {k: v if isinstance(v, list) else [v] for k, v in attrs.items()}
    directory.add(dn, values)


def legacy_base(directory: Directory, *containers: str) -> None:
    """The base entry and `containers` (ou=…) under it, as a directory in use before the tool."""
    add(
        directory,
        BASE_HG,
        objectClass=["top", "dcObject", "organization"],
        dc="hagiang",
        o="hagiang",
    )
    for ou in containers:
        add(directory, f"ou={ou},{BASE_HG}", objectClass=["top", "organizationalUnit"], ou=ou)


def person(directory: Directory, dn: str, mail: str, **extra: Any) -> None:
    local = mail.split("@")[0]
    add(
        directory,
        dn,
        objectClass=["top", "person", "organizationalPerson", "inetOrgPerson"],
        uid=local,
        cn=local,
        sn=local,
        mail=mail,
        **extra,
    )


# 2. An agency file can take over any entry under the base ----------------------------------


def test_a_pinned_address_never_adopts_a_service_entry_outside_the_mailbox_containers(
    directory: Directory, tmp_path: Path
) -> None:
    legacy_base(directory, "people", "services")
    helpdesk = f"uid=helpdesk,ou=services,{BASE_HG}"
    person(directory, helpdesk, f"helpdesk@{DOMAIN}")
    spec = scenario.hg()
    spec["agencies"]["soyte"]["staff"].append(
        {"id": "HG-0900", "name": "Lê Văn Bàn", "address": f"helpdesk@{DOMAIN}"}
    )
    folder = scenario.write(spec, tmp_path / "inv")
    with pytest.raises(InventoryError, match="already held by an entry the tool does not manage"):
        scenario.plan(folder, directory)
    # the record removed again: nothing was adopted, so nothing is deleted
    spec["agencies"]["soyte"]["staff"].pop()
    scenario.write(spec, folder)
    plan = converged(folder, directory, tmp_path / "out")
    assert {op.action for op in plan.operations} == {Action.CREATE}
    assert directory.get(helpdesk, ["objectClass"]) is not None


def test_adoption_from_a_declared_container_shows_the_dn_in_every_renderer(
    directory: Directory, tmp_path: Path
) -> None:
    legacy_base(directory, "users")
    legacy_dn = f"uid=ttlan,ou=users,{BASE_HG}"
    person(directory, legacy_dn, f"ttlan@{DOMAIN}")
    spec = scenario.hg()
    spec["people"] = ["ou=people", "ou=users"]
    spec["agencies"]["soyte"]["staff"][0]["address"] = f"ttlan@{DOMAIN}"
    folder = scenario.write(spec, tmp_path / "inv")
    plan = scenario.plan(folder, directory)
    adopt = next(op for op in plan.operations if op.id == "HG-0101")
    assert adopt.action is Action.UPDATE and adopt.dn == legacy_dn
    for shown in (render.text(plan), render.markdown(plan, "d"), planfile.to_json(plan)):
        assert "uid=ttlan,ou=users," in shown
    converged(folder, directory, tmp_path / "out")


def test_an_address_a_managed_mailbox_holds_is_never_adopted(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converged(folder, directory, tmp_path / "out")  # ttlan.soyte@ is HG-0101's
    person(directory, f"uid=copy,ou=people,{BASE_HG}", f"ttlan.soyte@{DOMAIN}")
    spec["agencies"]["sotttt"]["staff"].append(
        {"id": "HG-0901", "name": "Trần Thị Lan", "address": f"ttlan.soyte@{DOMAIN}"}
    )
    scenario.write(spec, folder)
    with pytest.raises(InventoryError):
        scenario.plan(folder, directory)


# 8. One unmanaged entry blocks every apply ---------------------------------------------------


def test_an_unmanaged_entry_with_a_new_staff_id_does_not_block_the_apply(
    directory: Directory, tmp_path: Path
) -> None:
    legacy_base(directory, "people", "services")
    service = f"uid=scanner,ou=services,{BASE_HG}"
    person(directory, service, f"scanner@{DOMAIN}", employeeNumber="HG-0101")
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    plan = scenario.plan(folder, directory)
    assert any(service in note and "HG-0101" in note for note in plan.notes), plan.notes
    converged(folder, directory, tmp_path / "out")
    kept = directory.get(service, READ)
    assert kept is not None and not kept.managed and kept.key == "HG-0101"


def test_the_people_setting_puts_new_mailboxes_in_its_first_container(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    spec["people"] = ["ou=staff,ou=mail", "ou=people"]
    folder = scenario.write(spec, tmp_path / "inv")
    plan = converged(folder, directory, tmp_path / "out")
    assert plan.containers == (BASE_HG, f"ou=mail,{BASE_HG}", f"ou=staff,ou=mail,{BASE_HG}")
    created = [op.new_dn for op in plan.operations]
    assert created and all(dn.endswith(f",ou=staff,ou=mail,{BASE_HG}") for dn in created)
    saved = json.loads(planfile.to_json(plan))
    assert saved["people"] == [f"ou=staff,ou=mail,{BASE_HG}", f"ou=people,{BASE_HG}"]


# 1. A saved plan is trusted --------------------------------------------------------------------


def env_for(server: Slapd) -> dict[str, str]:
    return {
        "RECONCILER_DIRECTORY": server.url,
        "RECONCILER_BIND_DN": server.root_dn,
        "RECONCILER_BIND_PASSWORD": server.root_pw,
    }


class Attack:
    """A converged province on the real slapd, a service account beside it, and a fresh plan
    file (`plan --out`) for the attacker to edit."""

    def __init__(self, server: Slapd, tmp: Path) -> None:
        self.server, self.tmp = server, tmp
        self.spec = scenario.hg()
        self.folder = scenario.write(self.spec, tmp / "inv")
        with scenario.connect(server) as d:
            converged(self.folder, d, tmp / "setup")
            add(
                d,
                f"ou=services,{BASE_HG}",
                objectClass=["top", "organizationalUnit"],
                ou="services",
            )
            person(d, POSTMASTER, f"postmaster@{DOMAIN}")
        self.plan_file = tmp / "plan.json"
        self.n = 0

    def plan(self, *extra: str) -> None:
        made = run_cli(
            "plan", str(self.folder), "--out", str(self.plan_file), *extra, env=env_for(self.server)
        )
        assert made.returncode == 0, made.stderr

    def apply(self, *extra: str) -> subprocess.CompletedProcess[str]:
        self.n += 1
        return run_cli(
            "apply",
            str(self.plan_file),
            "--credentials-out",
            str(self.tmp / f"c{self.n}.csv"),
            "--audit-log",
            str(self.tmp / "log" / "audit.jsonl"),
            *extra,
            env=env_for(self.server),
        )

    def entry(self, dn: str) -> Entry | None:
        with scenario.connect(self.server) as d:
            return d.get(dn, ["*", *READ])

    def refused(self, result: subprocess.CompletedProcess[str], *words: str) -> None:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        for word in words:
            assert word in result.stderr, result.stderr
        log = self.tmp / "log" / "audit.jsonl"
        lines = log.read_text("utf-8").splitlines() if log.exists() else []
        records = [json.loads(x) for x in lines]
        assert not records or records[-1]["outcome"] == "failed"  # a file refused: no run
        assert not [r for r in records if r["outcome"] == "changed"]


POSTMASTER = f"uid=postmaster,ou=services,{BASE_HG}"


def test_a_resealed_plan_cannot_delete_the_policy_or_a_service_account(
    slapd: Slapd, tmp_path: Path
) -> None:
    attack = Attack(slapd, tmp_path)
    policy_dn = f"cn=default,ou=policies,{slapd.suffix}"
    policy, postmaster = attack.entry(policy_dn), attack.entry(POSTMASTER)
    assert policy is not None and postmaster is not None
    attack.plan()

    def edit(data: dict[str, Any]) -> None:
        data["operations"] += [
            tamper.operation("delete", policy, BASE_HG, id="HG-0101"),
            tamper.operation("delete", postmaster, BASE_HG, id="postmaster"),
        ]

    tamper.reseal(attack.plan_file, edit)
    attack.refused(
        attack.apply(),
        "the plan breaks what apply never does",
        f"operation 1 (delete HG-0101 {policy_dn}): {policy_dn} is not directly inside a mailbox"
        " container",
        f"operation 2 (delete postmaster {POSTMASTER})",
    )
    assert attack.entry(policy_dn) is not None and attack.entry(POSTMASTER) is not None

    # the attacker declares the services container too: postmaster is still not the tool's
    def declare(data: dict[str, Any]) -> None:
        data["operations"].pop(-2)
        data["people"].append(f"ou=services,{BASE_HG}")

    tamper.reseal(attack.plan_file, declare)
    attack.refused(attack.apply(), "is not the tool's (no govMailAccount)")
    assert attack.entry(POSTMASTER) is not None


def test_with_the_inventory_a_plan_cannot_declare_its_own_containers_or_limits(
    slapd: Slapd, tmp_path: Path
) -> None:
    """A re-sealed plan may declare another mailbox container and raise its own limits; apply
    --inventory takes them from the reviewed inventory's directory.yaml instead."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    attack.plan()
    inventory = ("--inventory", str(attack.folder))

    def declare(data: dict[str, Any]) -> None:
        data["people"].append(f"ou=services,{BASE_HG}")

    tamper.reseal(attack.plan_file, declare)
    assert "mailbox containers" not in attack.apply("--expect-digest", "x").stderr
    attack.refused(
        attack.apply(*inventory),
        f"the plan declares the mailbox containers ou=people,{BASE_HG}, ou=services,{BASE_HG}, "
        f"the inventory declares ou=people,{BASE_HG}",
    )

    def limits(data: dict[str, Any]) -> None:
        data["people"].pop()
        data["limits"]["max_deletes"] = 500

    tamper.reseal(attack.plan_file, limits)
    attack.refused(attack.apply(*inventory), "the plan records max_deletes 500")

    def allowance(data: dict[str, Any]) -> None:
        data["limits"]["max_deletes"] = 10
        data["limits"]["allow_deletes"] = 500

    digest = tamper.reseal(attack.plan_file, allowance)
    attack.refused(attack.apply(*inventory), "a decision only a reviewed plan carries")
    lan = attack.entry(f"uid=ttlan.soyte,ou=people,{BASE_HG}")
    assert lan is not None and lan.get("title") != "Trưởng phòng"
    # bound to the digest reviewers saw, the same plan goes through
    done = attack.apply(*inventory, "--expect-digest", digest)
    assert done.returncode == 0, done.stderr
    lan = attack.entry(f"uid=ttlan.soyte,ou=people,{BASE_HG}")
    assert lan is not None and lan.get("title") == "Trưởng phòng"


@pytest.mark.parametrize(
    ("attr", "value", "why"),
    [
        ("userPassword", "{SSHA}backdoor", "can only be issued by apply"),
        ("userpassword", "{SSHA}backdoor", "can only be issued by apply"),
        ("2.5.4.35", "{SSHA}backdoor", "which apply never writes"),
        ("userPassword;x-second", "{SSHA}backdoor", "which apply never writes"),
        ("pwdPolicySubentry", "cn=weak,ou=policies", "which apply never writes"),
        ("pwdAccountLockedTime", "20990101000000Z", "is only ever 000001010000Z"),
    ],
)
def test_a_resealed_plan_cannot_write_a_second_password_or_another_attribute(
    slapd: Slapd, tmp_path: Path, attr: str, value: str, why: str
) -> None:
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    attack.plan()

    def edit(data: dict[str, Any]) -> None:
        update = next(op for op in data["operations"] if op["id"] == "HG-0101")
        update["changes"][attr] = {"before": [], "after": [value]}

    tamper.reseal(attack.plan_file, edit, loads=False)
    attack.refused(attack.apply(), why)
    lan = attack.entry(f"uid=ttlan.soyte,ou=people,{BASE_HG}")
    assert lan is not None and lan.get("title") != "Trưởng phòng"


def ldif_copy(server: Slapd, copy: Path) -> Path:
    """The server's entries in the LDIF file `copy`: the same content, another directory."""
    with scenario.connect(server) as live, open_directory(f"ldif:{copy}") as other:
        for entry in live.read(server.suffix, ["*", *READ]):
            other.add(
                entry.dn,
                {
                    k: list(v)
                    for k, v in entry.attrs.items()
                    if k not in ("createtimestamp", "modifytimestamp")
                },
            )
    return copy


def test_a_plan_for_another_directory_applies_only_when_told_so(
    slapd: Slapd, tmp_path: Path
) -> None:
    """A plan made against the directory's copy (a fork's snapshot) is refused with the way out
    named; --accept-other-directory applies it, the override recorded, and the entries it
    touches are still checked against what the plan read: a new hire is created, a change to an
    entry the copy holds otherwise than the server (no password in a snapshot) is stale."""
    attack = Attack(slapd, tmp_path)
    staff = attack.spec["agencies"]["soyte"]["staff"]
    staff.append({"id": "HG-0888", "name": "Vàng Thị Mỷ"})
    scenario.write(attack.spec, attack.folder)
    copy = ldif_copy(slapd, tmp_path / "copy.ldif")

    def plan_on_copy() -> None:
        made = run_cli(
            "plan", str(attack.folder), "--directory", f"ldif:{copy}", "--out",
            str(attack.plan_file),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

    plan_on_copy()
    attack.refused(attack.apply(), "--accept-other-directory applies it")
    applied = attack.apply("--accept-other-directory")
    assert applied.returncode == 0, applied.stderr
    with scenario.connect(slapd) as d:
        assert list(d.find(BASE_HG, "employeeNumber", ["HG-0888"], ["mail"]))
    log = (tmp_path / "log" / "audit.jsonl").read_text("utf-8").splitlines()
    overridden = [json.loads(x) for x in log if '"overridden"' in x]
    assert overridden and overridden[0]["event"] == "identity"

    staff[0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    ldif_copy(slapd, copy.with_name("copy2.ldif")).replace(copy)
    plan_on_copy()
    stale = attack.apply("--accept-other-directory")
    assert stale.returncode == 1 and "changed since the plan was made" in stale.stderr
    lan = attack.entry(f"uid=ttlan.soyte,ou=people,{BASE_HG}")
    assert lan is not None and lan.get("title") != "Trưởng phòng"


def test_a_plan_for_another_directory_is_refused(slapd: Slapd, tmp_path: Path) -> None:
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    # the same province in an LDIF file: another directory, whatever its content
    copy = ldif_copy(slapd, tmp_path / "copy.ldif")
    made = run_cli(
        "plan", str(attack.folder), "--directory", f"ldif:{copy}", "--out", str(attack.plan_file)
    )
    assert made.returncode == 0, made.stderr
    attack.refused(
        attack.apply(),
        "the plan was made for the directory ldif:",
        "a plan applies only to the directory it was computed from",
    )
    # a plan made for this server, whose identity was edited: refused too
    attack.plan()
    tamper.reseal(
        attack.plan_file,
        lambda data: data["directory"].update(identity="0f0f0f0f-0000-0000-0000-0"),
    )
    attack.refused(attack.apply(), "the plan was made for the directory 0f0f0f0f")
    # and the real one applies, through any URL that reaches the server
    attack.plan()
    applied = run_cli(
        "apply",
        str(attack.plan_file),
        "--credentials-out",
        str(tmp_path / "ok.csv"),
        "--audit-log",
        str(tmp_path / "log" / "audit.jsonl"),
        env={**env_for(slapd), "RECONCILER_DIRECTORY": slapd.ldapi_url},
    )
    assert applied.returncode == 0, applied.stderr


def test_the_deletion_guard_is_checked_again_at_apply(slapd: Slapd, tmp_path: Path) -> None:
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"] += [
        {"id": f"HG-{300 + i}", "name": f"Lê Văn {chr(65 + i)}"} for i in range(12)
    ]
    scenario.write(attack.spec, attack.folder)
    with scenario.connect(slapd) as d:
        converged(attack.folder, d, tmp_path / "more")
        victims = [e for e in d.read(BASE_HG, READ) if e.managed and e.key.startswith("HG-3")]
    attack.plan()
    tamper.reseal(
        attack.plan_file,
        lambda data: data["operations"].extend(
            tamper.operation("delete", e, BASE_HG) for e in victims
        ),
    )
    attack.refused(
        attack.apply(),
        "goes past the limits it records",
        "this plan deletes 12 mailboxes, more than max_deletes (10)",
    )
    with scenario.connect(slapd) as d:
        assert all(d.get(e.dn, ["1.1"]) is not None for e in victims)


def test_a_mailbox_created_again_says_the_earlier_password_line_is_void(
    slapd: Slapd, tmp_path: Path
) -> None:
    """A mailbox written with a handed-over password, then gone (deleted by hand here; after a
    failover, lost with the provider that never replicated it), is created again with a new
    password: the first credentials file's line for it is said to be dead, in the output and in
    the audit log, so nobody hands over a password that opens nothing."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"].append({"id": "HG-0777", "name": "Hoàng Văn Phúc"})
    scenario.write(attack.spec, attack.folder)
    attack.plan()
    first = attack.apply()
    assert first.returncode == 0, first.stderr
    with scenario.connect(slapd) as d:
        [entry] = d.find(BASE_HG, "employeeNumber", ["HG-0777"], ["mail"])
        address = entry.mail
        d.delete(entry.dn)
    attack.plan()
    again = attack.apply()
    assert again.returncode == 0, again.stderr
    c1, c2 = tmp_path / "c1.csv", tmp_path / "c2.csv"
    said = " ".join(again.stderr.split())
    assert f"{address}: the password put in {c1.resolve()}" in said, again.stderr
    assert f"that line is void, the working one is in {c2}" in said, again.stderr
    assert address in c1.read_text("utf-8") and address in c2.read_text("utf-8")
    log = [
        json.loads(x)
        for x in (tmp_path / "log" / "audit.jsonl").read_text("utf-8").split("\n")
        if x
    ]
    assert [r["credentials"] for r in log if r["outcome"] == "voided"] == [str(c1.resolve())]
    third = attack.apply()  # the same plan again: done, nothing voided twice
    assert "void" not in third.stderr, third.stderr


@pytest.mark.parametrize("forgery", ["accounts", "share"])
def test_the_suspension_guard_is_checked_again_at_apply(
    slapd: Slapd, tmp_path: Path, forgery: str
) -> None:
    """A plan that suspends more than a tenth of the mailboxes needs --allow-suspends, which only
    a digest-bound plan carries. A re-sealed plan that drops the allowance and raises the count
    of mailboxes it says the directory held, or its own share, is refused: apply counts the
    mailboxes itself, and the share is the tool's."""
    attack = Attack(slapd, tmp_path)
    staff = attack.spec["agencies"]["soyte"]["staff"]
    for record in staff[:3]:
        record |= {"state": "suspended", "suspension": {"clause": "HG-2024 Đ8.2.b", "note": "lộ"}}
    scenario.write(attack.spec, attack.folder)
    attack.plan("--allow-suspends", "3")

    def forge(data: dict[str, Any]) -> None:
        data["limits"]["allow_suspends"] = None
        if forgery == "accounts":
            data["directory"]["accounts"] = 10_000
        else:
            data["limits"]["suspend_share"] = 1.0

    tamper.reseal(attack.plan_file, forge)
    words = {
        "accounts": "says the directory held 10000",
        "share": "records a suspension guard of 100% of the mailboxes",
    }
    attack.refused(attack.apply("--inventory", str(attack.folder)), words[forgery])
    with scenario.connect(slapd) as d:
        locked = [e for e in d.read(BASE_HG, READ) if e.get("pwdAccountLockedTime")]
    assert not locked


def test_a_forged_adoption_or_a_move_out_of_the_containers_is_refused(
    slapd: Slapd, tmp_path: Path
) -> None:
    attack = Attack(slapd, tmp_path)
    postmaster = attack.entry(POSTMASTER)
    assert postmaster is not None
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    attack.plan()
    classes = list(postmaster.all("objectClass"))
    adopt = tamper.operation(
        "update",
        postmaster,
        id="HG-0999",
        changes={
            "objectClass": {"before": classes, "after": [*classes, "govMailAccount"]},
            "employeeNumber": {"before": [], "after": ["HG-0999"]},
        },
    )

    def move(data: dict[str, Any]) -> None:
        data["people"].append(f"ou=services,{BASE_HG}")
        lan = next(op for op in data["operations"] if op["id"] == "HG-0101")
        lan["changes"]["uid"] = {"before": ["ttlan.soyte"], "after": ["ttlan.x"]}
        lan["action"], lan["new_dn"] = "rename", f"uid=ttlan.x,ou=services,{BASE_HG}"
        lan["from"], lan["to"] = lan.pop("address"), f"ttlan.x@{DOMAIN}"

    tamper.reseal(attack.plan_file, move)
    attack.refused(attack.apply(), "a rename keeps the entry in its container")
    attack.plan()

    def adoption(data: dict[str, Any]) -> None:
        data["operations"].append(adopt)
        data["people"].append(f"ou=services,{BASE_HG}")

    tamper.reseal(attack.plan_file, adoption)
    attack.refused(attack.apply(), "is a service address (postmaster), never adopted")
    assert not attack.entry(POSTMASTER).managed  # type: ignore[union-attr]


def test_expect_digest_refuses_any_other_plan(slapd: Slapd, tmp_path: Path) -> None:
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    attack.plan()
    reviewed = planfile.digest(planfile.load(attack.plan_file))

    def edit(data: dict[str, Any]) -> None:  # a plan that keeps every invariant
        lan = next(op for op in data["operations"] if op["id"] == "HG-0101")
        lan["changes"]["title"]["after"] = ["Giám đốc (sửa)"]

    forged = tamper.reseal(attack.plan_file, edit)
    assert forged != reviewed
    attack.refused(attack.apply("--expect-digest", reviewed), "not the plan that was reviewed")


# 3. The lock can be taken from a live run, and released by the wrong run ------------------------


def holder_entry(directory: Directory, **info: Any) -> str:
    """A lock entry as another run left it."""
    value = json.dumps(
        {
            "run": "r-other",
            "actor": "ci",
            "started": "2026-12-01T00:00:00+00:00",
            "plan": "sha256:x",
            **info,
        },
        sort_keys=True,
    )
    dn = f"cn=reconciler-lock,{BASE_HG}"
    try:
        add(
            directory,
            dn,
            objectClass=["top", "applicationProcess"],
            cn="reconciler-lock",
            description=value,
        )
    except EntryExists:  # left free by an earlier apply
        directory.modify(dn, {"description": [value]})
    return value


def soon(seconds: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def alive() -> Iterator[subprocess.Popen[bytes]]:
    """Another process on this host that runs while the test does (a live lock holder)."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_break_lock_refuses_a_live_holder_on_this_host(
    directory: Directory, alive: subprocess.Popen[bytes]
) -> None:
    legacy_base(directory)
    holder_entry(directory, host=socket.gethostname(), pid=alive.pid, expires=soon(-7200))
    with pytest.raises(LockHeld, match="It is still working") as refused:
        Lock(directory, BASE_HG, "me", "d").acquire("")
    assert "--break-lock=r-other" in str(refused.value)
    with pytest.raises(LockHeld, match="names another run"):
        Lock(directory, BASE_HG, "me", "d").acquire("r-someone-else")
    taker = Lock(directory, BASE_HG, "me", "d")
    replaced = taker.acquire("r-other")  # named: taken over, and said so
    assert replaced is not None and replaced.run == "r-other"
    assert taker.release()


def test_break_lock_takes_over_a_dead_process_on_this_host(directory: Directory) -> None:
    """A dead process's lock, and one an earlier run of this very process could not give back."""
    legacy_base(directory)
    dead_pid = int(subprocess.check_output(["sh", "-c", "echo $$"]).decode())  # ran, and gone
    holder_entry(directory, host=socket.gethostname(), pid=dead_pid, expires=soon(7200))
    replaced = Lock(directory, BASE_HG, "me", "d").acquire("")
    assert replaced is not None and "no longer runs on this host" in replaced.info["why"]
    earlier = Lock(directory, BASE_HG, "me", "d")  # this process: a run that could not release
    assert earlier.acquire("") is not None
    replaced = Lock(directory, BASE_HG, "me", "d").acquire("")
    assert replaced is not None and "an earlier run of this process" in replaced.info["why"]


def test_break_lock_on_another_host_waits_for_the_lease(directory: Directory) -> None:
    legacy_base(directory)
    fresh = holder_entry(directory, host="ci-runner-7", pid=1, expires=soon(300))
    with pytest.raises(LockHeld, match="its lease, renewed every 60 s"):
        Lock(directory, BASE_HG, "me", "d").acquire("")
    expired = fresh.replace(json.loads(fresh)["expires"], soon(-1))
    directory.modify(f"cn=reconciler-lock,{BASE_HG}", {"description": [expired]})
    replaced = Lock(directory, BASE_HG, "me", "d").acquire("")
    assert replaced is not None and "lease ran out" in replaced.info["why"]


def test_release_is_a_swap_on_the_owner_and_a_taken_over_run_stops(directory: Directory) -> None:
    legacy_base(directory)
    first = Lock(directory, BASE_HG, "first", "d")
    assert first.acquire(None) is None
    with pytest.raises(LockHeld, match="another apply holds the lock"):
        Lock(directory, BASE_HG, "second", "d").acquire(None)
    second = Lock(directory, BASE_HG, "second", "d")
    second.acquire(first.run)  # forced, naming the first run
    assert not first.release()  # the first run ends: it leaves the second run's lock alone
    entry = directory.get(second.dn, ["description"])
    assert entry is not None and json.loads(entry.get("description") or "")["run"] == second.run
    with pytest.raises(LockHeld, match="took over the lock"):
        first.renew(force=True)  # the first run, still working, stops at its next renewal
    second.renew(force=True)
    assert second.release()
    third = Lock(directory, BASE_HG, "third", "d")
    assert third.acquire(None) is None  # free again: taken without breaking anything
    assert third.release()


def test_apply_refuses_to_break_a_live_apply(
    slapd: Slapd, tmp_path: Path, alive: subprocess.Popen[bytes]
) -> None:
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(attack.spec, attack.folder)
    attack.plan()
    with scenario.connect(slapd) as d:
        holder_entry(d, host=socket.gethostname(), pid=alive.pid, expires=soon(7200))
    refused = attack.apply("--break-lock")
    assert refused.returncode == 1 and "It is still working" in refused.stderr, refused.stderr
    forced = attack.apply("--break-lock=r-other")
    assert forced.returncode == 0, forced.stderr
    assert "Took over the lock of a previous run" in forced.stderr


def transfer_planned(directory: Directory, tmp: Path) -> tuple[Path, Plan, Operation]:
    """The province converged, then HG-0101 moved to another agency: a plan that renames."""
    spec = scenario.hg()
    folder = scenario.write(spec, tmp / "inv")
    converged(folder, directory, tmp / "out")
    spec["agencies"]["sotttt"]["staff"].append(spec["agencies"]["soyte"]["staff"].pop())
    scenario.write(spec, folder)
    plan = scenario.plan(folder, directory)
    return folder, plan, next(op for op in plan.operations if op.action is Action.RENAME)


# 4. Apply does not check that an address is still free -------------------------------------------


def test_an_address_given_by_hand_between_plan_and_apply_stops_the_create(
    directory: Directory, tmp_path: Path
) -> None:
    legacy_base(directory, "people", "services")
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    plan = scenario.plan(folder, directory)
    lan = next(op for op in plan.operations if op.id == "HG-0101")
    add(
        directory,
        f"uid=scanner,ou=services,{BASE_HG}",
        objectClass=["inetOrgPerson"],
        uid="scanner",
        cn="scanner",
        sn="scanner",
        mail=[f"scanner@{DOMAIN}", lan.address],
    )
    # ^ the address given by hand to a service entry, meanwhile
    with pytest.raises(StalePlan, match=f"the address {lan.address} is now held by uid=scanner"):
        scenario.apply(plan, directory, tmp_path / "out")
    assert scenario.passwords(tmp_path / "out") == {}  # nothing handed over
    assert not [e for e in directory.read(BASE_HG, READ) if e.managed]


def test_an_address_given_by_hand_stops_the_rename_to_it(
    directory: Directory, tmp_path: Path
) -> None:
    _, plan, rename = transfer_planned(directory, tmp_path)
    add(
        directory,
        f"ou=services,{BASE_HG}",
        objectClass=["top", "organizationalUnit"],
        ou="services",
    )
    person(directory, f"uid=other,ou=services,{BASE_HG}", rename.address)
    with pytest.raises(StalePlan, match=f"the address {rename.address} is now held by"):
        scenario.apply(plan, directory, tmp_path / "out2")
    assert directory.get(rename.dn, ["1.1"]) is not None  # not renamed


# 5. An interrupted rename loses a hand edit ------------------------------------------------------


class CutAfterRename(PassThrough):
    """An apply killed between the modrdn and the modify of a rename."""

    def modify(self, dn: str, changes: Any, expect: Any = None) -> None:
        if "mail" in changes:
            raise DirectoryError("killed between the rename and the modify")
        self.inner.modify(dn, changes, expect)


def renamed_half_way(directory: Directory, tmp: Path) -> tuple[Path, Plan, Operation]:
    folder, plan, rename = transfer_planned(directory, tmp)
    recap = scenario.apply(plan, CutAfterRename(directory), tmp / "cut")
    assert recap.failed == 1
    assert directory.get(rename.new_dn, ["1.1"]) is not None  # renamed, attributes not written
    return folder, plan, rename


def test_a_resumed_rename_never_overwrites_a_hand_edit(
    directory: Directory, tmp_path: Path
) -> None:
    _, plan, rename = renamed_half_way(directory, tmp_path)
    directory.modify(rename.new_dn, {"title": ["Phó Giám đốc (sửa tay)"]})
    with pytest.raises(StalePlan, match="changed since the plan was made"):
        scenario.apply(plan, directory, tmp_path / "again")
    after = directory.get(rename.new_dn, ["title", "mail"])
    assert after is not None and after.get("title") == "Phó Giám đốc (sửa tay)"


def test_a_resumed_rename_without_a_hand_edit_completes(
    directory: Directory, tmp_path: Path
) -> None:
    folder, plan, rename = renamed_half_way(directory, tmp_path)
    recap = scenario.apply(plan, directory, tmp_path / "again")
    assert recap.failed == 0 and recap.changed == 1, recap.messages
    assert scenario.plan(folder, directory).empty
    after = directory.get(rename.new_dn, ["mail", "govMailAlias"])
    assert after is not None and after.mail == rename.address
    assert rename.previous in after.all("govMailAlias")


# 6. A password handed over twice ---------------------------------------------------------------
# (the kill harness is in test_faults.py: test_every_mailbox_has_exactly_one_working_password…)


class ThirdMailbox(PassThrough):
    """The third mailbox's add fails: refused by the server (`written` False), or written and its
    answer lost (`written` True: the connection cut)."""

    def __init__(self, inner: Directory, *, written: bool) -> None:
        super().__init__(inner)
        self.adds, self.written = 0, written

    def add(self, dn: str, attrs: Any) -> None:
        self.adds += dn.startswith("uid=")
        third = dn.startswith("uid=") and self.adds == 3
        if third and not self.written:
            raise Refused("the directory refused to add it: unwillingToPerform (53)")
        self.inner.add(dn, attrs)
        if third:
            raise DirectoryError("lost the connection while adding it")


def test_a_password_whose_mailbox_could_not_be_written_is_taken_back(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    plan = scenario.plan(folder, directory)
    recap = scenario.apply(plan, ThirdMailbox(directory, written=False), tmp_path / "out")
    assert recap.failed == 1 and recap.changed == 2
    handed = scenario.passwords(tmp_path / "out")
    created = {e.mail for e in directory.read(BASE_HG, READ) if e.managed}
    assert set(handed) == created and len(handed) == 2  # no line for the mailbox not written
    records = [json.loads(x) for x in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    assert [r.get("withdrawn") for r in records if r["outcome"] == "failed"] == [True]
    converged(folder, directory, tmp_path / "out")


# Existing damage: a second password, an address held by two entries ------------------------------


RELAX = ("1.3.6.1.4.1.4203.666.5.12", True, None)  # slapd's Relax control: past ppolicy


def test_a_mailbox_with_a_second_password_gets_one_new_password(
    slapd: Slapd, tmp_path: Path
) -> None:
    directory = scenario.connect(slapd)
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    converged(folder, directory, tmp_path / "out")
    lan = next(e for e in directory.read(BASE_HG, READ) if e.key == "HG-0101")
    assert lan.passwords == 1
    handed = scenario.passwords(tmp_path / "out")[lan.mail or ""]
    with admin_connection(slapd) as admin:  # the damage, as a hand edit past ppolicy leaves it
        admin.modify(
            lan.dn, {"userPassword": [(ldap3.MODIFY_ADD, ["Backdoor-2026!x"])]}, controls=[RELAX]
        )
    assert ldapwhoami(slapd, lan.dn, "Backdoor-2026!x").returncode == 0
    plan = scenario.plan(folder, directory)
    [repair] = plan.operations
    clause = regulations.get("hagiang-2024").reset_clause
    assert (repair.action, repair.id, repair.clause) == (Action.UPDATE, "HG-0101", clause)
    assert "the entry has 2 passwords" in repair.reason
    for shown in (render.text(plan), render.markdown(plan, "d"), planfile.to_json(plan)):
        assert "Backdoor" not in shown and "{SSHA}" not in shown and handed not in shown
        assert "2 passwords" in shown
    recap = scenario.apply(plan, directory, tmp_path / "fix")
    assert recap.failed == 0 and recap.changed == 1
    after = directory.get(lan.dn, READ)
    assert after is not None and after.passwords == 1 and after.get("pwdReset") == "TRUE"
    assert ldapwhoami(slapd, lan.dn, "Backdoor-2026!x").returncode != 0  # the backdoor is shut
    new = scenario.passwords(tmp_path / "fix")[lan.mail or ""]
    who = ldapwhoami(slapd, lan.dn, new)
    assert "Password must be changed" in who.stdout + who.stderr
    assert scenario.plan(folder, directory).empty
    directory.close()


def test_addresses_held_by_two_entries_are_found_and_sorted_out(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converged(folder, directory, tmp_path / "out")
    by_key = {e.key: e for e in directory.read(BASE_HG, READ) if e.managed}
    son, lan = by_key["HG-0001"], by_key["HG-0101"]
    office = by_key["agency:sotttt"]
    # Lan's entry given Sơn's address as an alias, and the agency's as its own address
    directory.modify(lan.dn, {"govMailAlias": [son.mail or ""], "mail": [office.mail or ""]})
    add(
        directory,
        f"ou=services,{BASE_HG}",
        objectClass=["top", "organizationalUnit"],
        ou="services",
    )
    for uid in ("scan1", "scan2"):  # two entries of someone else's on one address
        add(
            directory,
            f"uid={uid},ou=services,{BASE_HG}",
            objectClass=["inetOrgPerson"],
            uid=uid,
            cn=uid,
            sn=uid,
            mail=f"scanner@{DOMAIN}",
        )
    plan = scenario.plan(folder, directory)
    [fix] = plan.operations
    assert (fix.action, fix.id) == (Action.RENAME, "HG-0101")
    assert fix.previous == office.mail and fix.address == lan.mail
    assert f"the address {office.mail} is also held by {office.dn}, which keeps it" in fix.reason
    aliases = next(c for c in fix.changes if c.attr == "govMailAlias")
    assert son.mail in aliases.before and son.mail not in aliases.after
    assert office.mail not in aliases.after  # the address it lost is not kept as an alias
    assert any("scanner@" in note and "uid=scan1" in note for note in plan.notes), plan.notes
    assert render.markdown(plan, "d").count("also held by") == 1
    recap = scenario.apply(plan, directory, tmp_path / "fix")
    assert recap.failed == 0, recap.messages
    again = scenario.plan(folder, directory)
    assert again.empty and again.notes == plan.notes


def test_an_alias_another_mailbox_keeps_is_removed_with_its_reason(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    converged(folder, directory, tmp_path / "out")
    by_key = {e.key: e for e in directory.read(BASE_HG, READ) if e.managed}
    son, lan = by_key["HG-0001"], by_key["HG-0101"]
    directory.modify(lan.dn, {"govMailAlias": [son.mail or ""]})
    [fix] = scenario.plan(folder, directory).operations
    assert (fix.action, fix.id) == (Action.UPDATE, "HG-0101")
    assert f"the alias {son.mail} is also held by {son.dn}, which keeps it" in fix.reason
    converged(folder, directory, tmp_path / "fix")
    after = directory.get(lan.dn, ["govMailAlias"])
    assert after is not None and after.all("govMailAlias") == ()


def test_a_password_whose_write_got_no_answer_stays_and_the_next_run_settles_it(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    plan = scenario.plan(folder, directory)
    recap = scenario.apply(plan, ThirdMailbox(directory, written=True), tmp_path / "out")
    assert recap.failed == 1 and any("is not known" in m for m in recap.messages)
    handed = scenario.passwords(tmp_path / "out")
    created = {e.mail for e in directory.read(BASE_HG, READ) if e.managed}
    assert set(handed) == created and len(handed) == 3  # the line of the third one stays
    again = scenario.apply(plan, directory, tmp_path / "out")
    assert again.failed == 0
    lines = [
        line.split(",")[0]
        for path in (tmp_path / "out").glob("credentials-*.csv")
        for line in path.read_text(encoding="utf-8").splitlines()[1:]
    ]
    assert sorted(lines) == sorted(set(lines))  # one line per mailbox, none handed over twice
    assert set(lines) == {e.mail for e in directory.read(BASE_HG, READ) if e.managed}
