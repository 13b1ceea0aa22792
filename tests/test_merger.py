"""The 2025 merger on two real slapd instances (source and target, loopback): `merge`,
`validate`, `plan --source-directory`, `apply`, as the README's "The 2025 merger" says.

The source is Quảng Nam's example inventory applied to a throwaway slapd of its own; the target
is Đà Nẵng's applied to the session's slapd. Passwords come from the credentials files."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from reconciler.attributes import LAST_LOGIN, LOCK, SUSPENDED_AT
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory
from reconciler.errors import ReconcilerError
from reconciler.model import Action, Entry, Plan
from reconciler.planning import pipeline

from . import scenario
from .helpers import PassThrough, run_cli

ROOT = Path(__file__).resolve().parent.parent
SOURCE_BASE = "ou=quangnam,dc=example,dc=gov,dc=vn"
TARGET_BASE = "ou=danang,dc=example,dc=gov,dc=vn"
NOW = dt.datetime(2025, 7, 2, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("source-slapd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run(*args: str) -> tuple[int, str, str]:
    result = run_cli(*args)
    return result.returncode, result.stdout, result.stderr


def bind(server: Slapd, dn: str, password: str) -> bool:
    server_ = ldap3.Server(server.url, get_info=ldap3.NONE)
    conn = ldap3.Connection(server_, user=dn, password=password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def snapshot(server: Slapd, base: str) -> dict[str, dict[str, list[str]]]:
    """Every entry under `base` with every attribute, operational ones and passwords included."""
    with scenario_admin(server) as conn:
        conn.search(base, "(objectClass=*)", attributes=["*", "+"])
        return {
            e.entry_dn: {k: sorted(map(str, v)) for k, v in e.entry_raw_attributes.items()}
            for e in conn.entries
        }


def scenario_admin(server: Slapd) -> Any:
    from .helpers import admin_connection

    return admin_connection(server)


class Provinces:
    """Quảng Nam applied to the source server, Đà Nẵng to the target, the merge written."""

    def __init__(self, source: Slapd, target: Slapd, tmp: Path) -> None:
        self.source, self.target, self.tmp = source, target, tmp
        self.qn = scenario.copy_example("quangnam", tmp / "quangnam", SOURCE_BASE)
        self.dn = scenario.copy_example("danang", tmp / "danang", TARGET_BASE)
        with scenario.connect(source) as d:
            scenario.apply(scenario.plan(self.qn, d, NOW), d, tmp / "qn")
        with scenario.connect(target) as d:
            scenario.apply(scenario.plan(self.dn, d, NOW), d, tmp / "dn")
        self.qn_passwords = scenario.passwords(tmp / "qn")
        self.merged = tmp / "merged"

    def merge(self, out: Path | None = None, map_file: Path | None = None) -> tuple[int, str]:
        out = out or self.merged
        shutil.rmtree(out, ignore_errors=True)
        code, stdout, stderr = run(
            "merge", "--from", str(self.qn), "--into", str(self.dn),
            "--map", str(map_file or self.dn / "merge-quangnam.yaml"), "--out", str(out),
        )  # fmt: skip
        return code, stdout + stderr

    def plan(self, target: Directory, **kw: Any) -> Plan:
        loaded = pipeline.load(self.merged)
        with scenario.connect(self.source) as source:
            sources = pipeline.read_sources(source, SOURCE_BASE, loaded)
        return scenario.plan(
            self.merged, target, NOW, sources=sources, source_url=self.source.url,
            source_base_dn=SOURCE_BASE, **kw,
        )  # fmt: skip

    def apply(self, result: Plan, target: Directory, **kw: Any) -> Any:
        with scenario.connect(self.source) as source:
            return scenario.apply(result, target, self.tmp / "move", source=source, **kw)


@pytest.fixture
def provinces(source_server: Slapd, slapd: Slapd, tmp_path: Path) -> Provinces:
    source_server.reset()
    return Provinces(source_server, slapd, tmp_path)


def _entries(server: Slapd, base: str) -> list[Entry]:
    from reconciler.attributes import READ

    with scenario.connect(server) as d:
        return [e for e in d.read(base, READ) if e.managed]


def test_a_whole_province_moves_with_its_passwords_suspensions_and_logins(
    provinces: Provinces,
) -> None:
    source, target = provinces.source, provinces.target
    # a user who changed the issued password and logged in; QN-0013 is declared suspended
    moved_user = next(e for e in _entries(source, SOURCE_BASE) if e.key == "QN-0040")
    issued = provinces.qn_passwords[moved_user.mail or ""]
    server = ldap3.Server(source.url, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=moved_user.dn, password=issued, auto_bind=True)
    try:
        assert conn.extend.standard.modify_password(moved_user.dn, issued, "Mat-khau-moi-2025")
    finally:
        conn.unbind()
    assert bind(source, moved_user.dn, "Mat-khau-moi-2025")  # sets pwdLastSuccess
    before = snapshot(source, SOURCE_BASE)
    source_entries = {e.key: e for e in _entries(source, SOURCE_BASE)}

    assert provinces.merge()[0] == 0
    assert run("validate", str(provinces.merged))[0] == 0
    time.sleep(1.1)  # the move's createTimestamp is not the source's creation
    with scenario.connect(target) as d:
        result = provinces.plan(d)
        creates = [op for op in result.operations if op.action is Action.CREATE]
        assert sum(op.source is not None for op in creates) == 60  # every person of Quảng Nam
        from reconciler.planning import planfile

        assert "Mat-khau-moi" not in planfile.to_json(result)  # never a password in a plan
        recap = provinces.apply(result, d)
        assert recap.failed == 0
        after = scenario.plan(provinces.merged, d, NOW)
        assert after.empty, [(op.action, op.id, op.reason) for op in after.operations]

    moved = {e.key: e for e in _entries(target, TARGET_BASE)}
    # every source mailbox exists once in the target
    for key in source_entries:
        if key and not key.startswith(("agency:", "unit:")):
            assert key in moved, key
    # every former address of both provinces resolves to exactly one mailbox
    holders: dict[str, list[str]] = {}
    for entry in moved.values():
        for address in (*entry.all("mail"), *entry.all("govMailAlias")):
            holders.setdefault(address.lower(), []).append(entry.dn)
    assert all(len(dns) == 1 for dns in holders.values())
    for entry in source_entries.values():
        for address in (*entry.all("mail"), *entry.all("govMailAlias")):
            assert len(holders.get(address.lower(), [])) == 1, address
    # the user binds to the target with the password they had
    here = moved["QN-0040"]
    assert bind(target, here.dn, "Mat-khau-moi-2025")
    assert not bind(target, here.dn, issued)
    # the last login is carried over, and read by the time rules beside pwdLastSuccess
    with scenario.connect(target) as d:
        carried = d.get(here.dn, [LAST_LOGIN, "pwdReset"])
    assert carried is not None and carried.get(LAST_LOGIN)
    assert carried.get("pwdReset") is None  # the user had changed the issued password
    # the time rules continue, not restart: the same last activity and issue of the password
    from reconciler.rules import lifecycle

    for key in ("QN-0039", "QN-0040"):
        was, now_ = source_entries[key], moved[key]
        assert lifecycle.last_activity(now_, {}) == lifecycle.last_activity(was, {}), key
        assert lifecycle.password_issued(now_) == lifecycle.password_issued(was), key
    assert lifecycle.password_issued(moved["QN-0040"]) is None  # changed: no rule to fire
    # a suspended one is still suspended, since the moment it was suspended
    was = source_entries["QN-0013"]
    now = moved["QN-0013"]
    assert now.all(LOCK) and now.get(SUSPENDED_AT) == was.get(SUSPENDED_AT)
    assert not bind(target, now.dn, provinces.qn_passwords[was.mail or ""])
    # the source is unchanged, to the last operational attribute
    assert snapshot(source, SOURCE_BASE) == before


def test_merging_and_planning_again_changes_nothing(provinces: Provinces, tmp_path: Path) -> None:
    assert provinces.merge()[0] == 0
    again = tmp_path / "again"
    assert provinces.merge(again)[0] == 0
    merged = provinces.merged
    first = {p.relative_to(merged): p.read_bytes() for p in merged.rglob("*.yaml")}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*.yaml")}
    assert first == second
    with scenario.connect(provinces.target) as d:
        one, two = provinces.plan(d), provinces.plan(d)
        from reconciler.planning.planfile import digest

        assert digest(one) == digest(two)


class Killed(BaseException):
    """The apply's process dies here: nothing after it runs, not even its cleanup."""


class DiesAfter(PassThrough):
    def __init__(self, inner: Directory, creates: int) -> None:
        super().__init__(inner)
        self.left, self.dead = creates, False

    def add(self, dn: str, attrs: Any) -> None:
        if self.dead:
            raise Killed
        if dn.startswith("uid="):
            if self.left == 0:
                self.dead = True
                raise Killed
            self.left -= 1
        self.inner.add(dn, attrs)

    def delete(self, dn: str) -> None:
        if self.dead:
            raise Killed  # the lock stays behind, as after a kill
        self.inner.delete(dn)

    def modify(self, dn: str, changes: Any, expect: Any = None) -> None:
        if self.dead:
            raise Killed  # nothing more is written: the lock is not given back
        self.inner.modify(dn, changes, expect)


def test_a_kill_in_the_middle_of_the_move_converges_on_the_same_apply(
    provinces: Provinces,
) -> None:
    assert provinces.merge()[0] == 0
    with scenario.connect(provinces.target) as d:
        result = provinces.plan(d)
        with pytest.raises(Killed):
            provinces.apply(result, DiesAfter(d, 20))
        with pytest.raises(ReconcilerError, match="another apply holds the lock"):
            provinces.apply(result, d)
        recap = provinces.apply(result, d, break_lock="")  # the holder is dead: taken over
        assert recap.failed == 0 and recap.ok >= 20
        assert scenario.plan(provinces.merged, d, NOW).empty
    moved = {e.key: e for e in _entries(provinces.target, TARGET_BASE)}
    user = moved["QN-0041"]
    assert bind(provinces.target, user.dn, provinces.qn_passwords["maictx@quangnam.gov.vn"])


def test_a_source_entry_changed_since_the_plan_makes_it_stale_before_any_write(
    provinces: Provinces,
) -> None:
    assert provinces.merge()[0] == 0
    with scenario.connect(provinces.target) as d:
        result = provinces.plan(d)
        with scenario.connect(provinces.source) as s:
            entry = next(e for e in _entries(provinces.source, SOURCE_BASE) if e.key == "QN-0040")
            s.modify(entry.dn, {LOCK: ["000001010000Z"]})
        with pytest.raises(ReconcilerError, match=r"QN-0040: its source entry .* changed"):
            provinces.apply(result, d)
        assert not any(e.key == "QN-0040" for e in _entries(provinces.target, TARGET_BASE))
        with pytest.raises(ReconcilerError, match="give --source-directory"):
            scenario.apply(result, d, provinces.tmp / "nosource")


def test_the_collision_rules_across_both_populations(provinces: Provinces) -> None:
    """quangnam-2020 Đ4.2 against the target's holders: the same name in both provinces, and a
    leader arriving (the issued address is not taken back); an address the target keeps in
    quarantine is issued to nobody."""
    assert provinces.merge()[0] == 0
    with scenario.connect(provinces.target) as d:
        history = {"objectClass": ["organizationalUnit"], "ou": ["history"]}
        d.add(f"ou=history,{TARGET_BASE}", history)
        d.add(
            f"cn=DN-0099 0,ou=history,{TARGET_BASE}",
            {
                "objectClass": ["top", "govMailTombstone"], "govMailFormerId": ["DN-0099"],
                "govMailFormerAddress": ["hanhnt@danang.gov.vn"],
                "govMailDeletedAt": ["20250601000000Z"], "displayName": ["Nguyễn Thị Hạnh"],
            },
        )  # fmt: skip
        ops = {op.id: op for op in provinces.plan(d).operations}
    assert ops["QN-0001"].address == "namnv2@danang.gov.vn"  # Giám đốc, rank 1, arriving
    assert "never taken back" in ops["QN-0001"].reason, ops["QN-0001"].reason
    assert "namnv@danang.gov.vn is held by Nguyễn Văn Nam (DN-0012)" in ops["QN-0001"].reason
    assert ops["QN-0037"].address == "namnv3@danang.gov.vn"  # DN-0002 holds namnv1
    assert ops["QN-0014"].address == "vanntt1@danang.gov.vn"  # the leader of the two first
    assert ops["QN-0005"].address == "vanntt2@danang.gov.vn"
    assert ops["QN-0004"].address == "nal1@danang.gov.vn"
    assert ops["QN-0039"].address == "hanhnt1@danang.gov.vn"  # hanhnt is in quarantine
    assert (
        "khoatd@quangnam.gov.vn"
        in dict((c.attr, c.after) for c in ops["QN-0038"].attributes)["govMailAlias"]
    )


def test_identical_diacritic_free_names_under_hagiang_2024(tmp_path: Path) -> None:
    """HG-2024 Đ5.2 across the two provinces, against the target's directory (an LDIF file)."""
    hg = scenario.copy_example("hagiang", tmp_path / "hg", "dc=hagiang,dc=gov,dc=vn")
    tq = scenario.copy_example("tuyenquang", tmp_path / "tq", "dc=tuyenquang,dc=gov,dc=vn")
    target = f"ldif:{tmp_path / 'tq.ldif'}"
    from reconciler.directory import open_directory

    with open_directory(target) as d:
        scenario.apply(scenario.plan(tq, d, NOW), d, tmp_path / "tq-apply")
    out = tmp_path / "merged"
    code, _, err = run("merge", "--from", str(hg), "--into", str(tq), "--map",
                       str(tq / "merge-hagiang.yaml"), "--out", str(out))  # fmt: skip
    assert code == 0, err
    with open_directory(target) as d:
        ops = {op.id: op for op in scenario.plan(out, d, NOW).operations}
    assert "TQ-0002" not in ops  # nvson.sokhcn stays with the target's Nguyễn Văn Sơn
    assert ops["HG-0001"].address == "nvson1.sokhcn@tuyenquang.gov.vn"  # identical: numbered
    assert ops["HG-0003"].address == "nvson2.sokhcn@tuyenquang.gov.vn"
    assert ops["HG-0002"].address == "ngvson.sokhcn@tuyenquang.gov.vn"  # differs: lengthened
    assert ops["HG-0004"].address == "htnham1.sokhcn@tuyenquang.gov.vn"  # TQ-0003's name
    # the abolished Sở TT&TT's unit addresses reach the successor's units
    unit = ops.get("unit:sokhcn/cntt")
    assert (
        unit is not None
        and "cntt.sotttt@hagiang.gov.vn"
        in dict((c.attr, c.after) for c in unit.attributes)["govMailAlias"]
    )


def test_the_lists_for_the_letters_and_the_mail_team(provinces: Provinces, tmp_path: Path) -> None:
    from reconciler.planning import planfile

    assert provinces.merge()[0] == 0
    with scenario.connect(provinces.target) as d:
        planfile.save(provinces.plan(d), tmp_path / "merge.json")
    code, _, err = run("merge-lists", str(tmp_path / "merge.json"), "--out", str(tmp_path / "l"))
    assert code == 0, err
    lists = tmp_path / "l"
    rows = (lists / "agencies" / "sokhcn.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "\ufeffHọ và tên,Chức danh,Địa chỉ cũ,Địa chỉ mới,Địa chỉ cũ vẫn nhận thư"
    assert "Nguyễn Văn Nam,Giám đốc,namnv@quangnam.gov.vn,namnv2@danang.gov.vn" in "\n".join(rows)
    page = (lists / "agencies" / "sokhcn.html").read_text(encoding="utf-8")
    assert '<html lang="vi">' in page and "namnv2@danang.gov.vn" in page and "<script" not in page
    jobs = (lists / "imap-sync-jobs.csv").read_text(encoding="utf-8").splitlines()
    assert "QN-0001,namnv,namnv@quangnam.gov.vn,namnv2,namnv2@danang.gov.vn" in jobs
    # the abolished Sở TT&TT's organisation mailbox into its successor's
    assert (
        "agency:sokhcn,vanphongsotttt,vanphongsotttt@quangnam.gov.vn,vanphongsokhcn,"
        "vanphongsokhcn@danang.gov.vn"
    ) in jobs
    routing = (lists / "mail-routing.txt").read_text(encoding="utf-8")
    assert "virtual_mailbox_domains = danang.gov.vn quangnam.gov.vn" in routing
    assert all(p.stat().st_mode & 0o077 == 0 for p in lists.rglob("*") if p.is_file())
    everything = "".join(p.read_text(encoding="utf-8") for p in lists.rglob("*") if p.is_file())
    assert not any(pw in everything for pw in provinces.qn_passwords.values())


def test_the_command_line_move_binds_to_the_source_with_its_own_variables(
    provinces: Provinces, tmp_path: Path
) -> None:
    assert provinces.merge()[0] == 0
    source, target = provinces.source, provinces.target
    env = {
        "RECONCILER_BIND_DN": target.root_dn,
        "RECONCILER_BIND_PASSWORD": target.root_pw,
        "RECONCILER_SOURCE_BIND_DN": source.root_dn,
    }
    secret = tmp_path / "source.pw"
    secret.write_text(source.root_pw + "\n", encoding="utf-8")
    secret.chmod(0o600)
    plan_file = tmp_path / "merge.json"
    planned = run_cli(
        "plan", str(provinces.merged), "--directory", target.url, "--now", "2025-07-02",
        "--source-directory", source.url, "--source-bind-password-file", str(secret),
        "--source-base-dn", SOURCE_BASE, "--out", str(plan_file), env=env,
    )  # fmt: skip
    assert planned.returncode == 0, planned.output
    assert "Found 60 of the merged records' mailboxes" in planned.stderr
    assert "Merging in" in planned.stdout and source.root_pw not in planned.output
    apply_args = ["apply", str(plan_file), "--directory", target.url, "--credentials-out",
                  str(tmp_path / "pw.csv"), "--audit-log",
                  str(tmp_path / "audit.jsonl")]  # fmt: skip
    refused = run_cli(*apply_args, env=env)
    assert refused.returncode == 1 and "give --source-directory" in refused.stderr
    wrong = run_cli(
        *apply_args, "--source-directory", source.url,
        env={**env, "RECONCILER_SOURCE_BIND_PASSWORD": "wrong"},
    )  # fmt: skip
    assert wrong.returncode == 1 and "Traceback" not in wrong.output
    done = run_cli(
        *apply_args, "--source-directory", source.url,
        env={**env, "RECONCILER_SOURCE_BIND_PASSWORD": source.root_pw},
    )  # fmt: skip
    assert done.returncode == 0, done.output
    audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    assert "QN-0001" in audit and "{SSHA}" not in audit  # never a hash in the audit log


def test_a_merge_that_reads_the_source_keeps_the_addresses_its_mailboxes_hold(
    provinces: Provinces, tmp_path: Path
) -> None:
    """An address a mailbox holds in the source directory but the source inventory does not
    name (an alias left by a rename there) is kept too: by the plan that carries the mailbox,
    and already by a merge given --source-directory."""
    source = provinces.source
    entry = next(e for e in _entries(source, SOURCE_BASE) if e.key == "QN-0040")
    with scenario.connect(source) as s:
        s.modify(entry.dn, {"govMailAlias": ["do.van.luc@quangnam.gov.vn"]})
    secret = tmp_path / "source.pw"
    secret.write_text(source.root_pw, encoding="utf-8")
    secret.chmod(0o600)
    out = tmp_path / "merged-read"
    merged = run_cli(
        "merge", "--from", str(provinces.qn), "--into", str(provinces.dn),
        "--map", str(provinces.dn / "merge-quangnam.yaml"), "--out", str(out),
        "--source-directory", source.url, "--source-bind-dn", source.root_dn,
        "--source-bind-password-file", str(secret), "--source-base-dn", SOURCE_BASE,
    )  # fmt: skip
    assert merged.returncode == 0, merged.output
    assert "Read the addresses of 60 of 60 records' mailboxes" in merged.stderr
    from reconciler.inventory import loader

    people = {p.id: p for p in loader.load(out).people}
    assert set(people["QN-0040"].aliases) == {"lucdv@quangnam.gov.vn", "do.van.luc@quangnam.gov.vn"}
    assert provinces.merge()[0] == 0  # without the source: the regulation's address only
    with scenario.connect(provinces.target) as d:
        op = next(o for o in provinces.plan(d).operations if o.id == "QN-0040")
    aliases = dict((c.attr, c.after) for c in op.attributes)["govMailAlias"]
    assert set(aliases) == {"lucdv@quangnam.gov.vn", "do.van.luc@quangnam.gov.vn"}
