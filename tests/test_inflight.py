"""Apply's pipelined writes (issue 20, `applying.inflight`): what waits for what, the password
lines of writes answered out of order, and a rename whose address a create of the same plan
reuses, on a real slapd through python-ldap's pipeline. The failure in the middle of a pipelined
batch is in test_faults.py (`test_a_write_refused_mid_pipeline_…`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from reconciler.applying.credentials import CredentialsFile
from reconciler.applying.inflight import Outcome, keys
from reconciler.attributes import READ
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, open_directory
from reconciler.directory.base import Answer, Pipeline, Write
from reconciler.model import Action, Plan
from reconciler.outputs import notices
from reconciler.rules import regulations

from . import scenario
from .helpers import PassThrough

BASE = scenario.BASE_HG
MIDDLE = ["Văn", "Thị", "Minh", "Quốc", "Thanh"]
GIVEN = ["Sơn", "Hùng", "Mai", "Tuấn", "Hoa", "Dũng", "Hà", "Nam", "Bình"]


def reusing_plan(directory: Directory, tmp: Path, others: int = 0) -> Plan:
    """Trần Thị Lan's mailbox renamed to ttmai, giving up ttlan (no alias kept), and a new
    mailbox created with ttlan's DN and address, after it in the same plan; `others` more new
    mailboxes besides. The planner keeps a renamed mailbox's address as its alias, so the plan
    is written by hand, as a later regulation's could make it."""
    spec = scenario.hg()
    folder = scenario.write(spec, tmp / "inv")
    scenario.apply(scenario.plan(folder, directory), directory, tmp / "first")
    staff = spec["agencies"]["soyte"]["staff"]
    staff[0]["name"] = "Trần Thị Mai"
    staff.append({"id": "HG-0999", "name": "Trần Thị Lan"})
    staff += [
        {"id": f"HG-{2000 + i}", "name": f"Lê {MIDDLE[i % 5]} {GIVEN[i // 5]}"}
        for i in range(others)
    ]
    plan = scenario.plan(scenario.write(spec, tmp / "inv2"), directory)
    rename = next(op for op in plan.operations if op.action is Action.RENAME)
    create = next(op for op in plan.operations if op.id == "HG-0999")
    rest = [op for op in plan.operations if op not in (rename, create)]
    assert rename.previous == "ttlan.soyte@hagiang.gov.vn" and create.address != rename.previous
    rename = dataclasses.replace(
        rename, changes=tuple(c for c in rename.changes if c.attr != "govMailAlias")
    )
    mine = {create.address: rename.previous, create.address.split("@")[0]: "ttlan.soyte"}
    create = dataclasses.replace(
        create,
        new_dn=rename.dn,
        address=rename.previous,
        attributes=tuple(
            dataclasses.replace(c, after=tuple(mine.get(v, v) for v in c.after))  # type: ignore[call-overload]
            for c in create.attributes
        ),
    )
    return dataclasses.replace(plan, operations=(rename, create, *rest))


def test_an_operation_waits_for_the_one_in_flight_that_frees_its_address_or_dn(
    tmp_path: Path,
) -> None:
    directory = open_directory(f"ldif:{tmp_path / 'd.ldif'}")
    plan = reusing_plan(directory, tmp_path, others=2)
    rename, create, *rest = plan.operations
    assert keys(rename, rename.dn) & keys(create, create.dn)  # its old DN and address
    assert not keys(rename, rename.dn) & keys(rest[0], rest[0].dn)


class Recording(Pipeline):
    """Answers only when asked, all at once: every write sent since is in flight till then."""

    window = 8

    def __init__(self, directory: Directory, log: list[tuple[str, set[str]]]) -> None:
        super().__init__(directory)
        self.log = log
        self.flying: dict[object, Write] = {}

    def send(self, write: Write, tag: object) -> None:
        self.log.append((f"{write.kind} {write.dn}", {w.dn for w in self.flying.values()}))
        self.flying[tag] = write
        super().send(write, tag)

    def answers(self, wait: bool = True) -> list[Answer]:
        self.flying.clear()
        return super().answers(wait)


class Watched(PassThrough):
    def __init__(self, inner: Directory) -> None:
        super().__init__(inner)
        self.log: list[tuple[str, set[str]]] = []

    def pipeline(self, window: int) -> Pipeline:
        return Recording(self, self.log)


def test_a_create_is_sent_once_the_rename_freeing_its_address_is_answered(
    tmp_path: Path,
) -> None:
    directory = open_directory(f"ldif:{tmp_path / 'd.ldif'}")
    plan = reusing_plan(directory, tmp_path, others=3)
    rename, create = plan.operations[:2]
    watched = Watched(directory)
    recap = scenario.apply(plan, watched, tmp_path / "second")
    assert (recap.failed, recap.changed) == (0, len(plan.operations)), recap.messages
    sent = [what for what, _ in watched.log]
    at = sent.index(f"add {create.new_dn}")
    flying = watched.log[at][1]
    assert rename.dn not in flying and rename.new_dn not in flying  # rename and modify answered
    assert sent.index(f"rename {rename.dn}") < sent.index(f"modify {rename.new_dn}") < at
    # the other creates went out with the rename, without waiting for it
    others = [i for i, (what, fly) in enumerate(watched.log) if rename.dn in fly]
    assert others and all(watched.log[i][0].startswith("add ") for i in others)
    entry = directory.get(create.new_dn, READ)
    assert entry is not None and entry.key == "HG-0999" and entry.mail == rename.previous


def deleting_and_creating(tmp_path: Path, creates: int) -> tuple[Directory, Plan]:
    """An LDIF directory holding HG-0102, and the plan that deletes it and creates `creates`
    others."""
    directory = open_directory(f"ldif:{tmp_path / 'd.ldif'}")
    spec = scenario.hg()
    staff = spec["agencies"]["soyte"]["staff"]
    staff.append({"id": "HG-0102", "name": "Lê Văn Nam"})
    scenario.apply(
        scenario.plan(scenario.write(spec, tmp_path / "a"), directory), directory, tmp_path / "1"
    )
    staff.pop()
    staff += [{"id": f"HG-{2000 + i}", "name": f"Lê {MIDDLE[i]} Bình"} for i in range(creates)]
    return directory, scenario.plan(scenario.write(spec, tmp_path / "b"), directory)


def test_a_delete_goes_alone_once_every_write_before_it_is_answered(tmp_path: Path) -> None:
    directory, plan = deleting_and_creating(tmp_path, 4)
    assert [op.action for op in plan.operations] == [Action.CREATE] * 4 + [Action.DELETE]
    watched = Watched(directory)
    recap = scenario.apply(plan, watched, tmp_path / "2")
    assert (recap.failed, recap.changed) == (0, 5), recap.messages
    *creates, tombstone, delete = watched.log
    assert all(what.startswith("add uid=") for what, _ in creates)
    assert len(creates[-1][1]) == 3  # the creates went out together
    assert tombstone[0].startswith("add ") and not tombstone[1]  # nothing else in flight
    assert delete[0].startswith("delete ")


def test_nothing_is_sent_beside_a_delete_whatever_the_plan_s_order(tmp_path: Path) -> None:
    """`plan` puts deletes last, but a plan file may be re-ordered: a create after a delete waits
    for the delete's answer, since it may take an address (an alias) of the entry deleted."""
    directory, plan = deleting_and_creating(tmp_path, 3)
    *creates, delete = plan.operations
    assert delete.action is Action.DELETE
    plan = dataclasses.replace(plan, operations=(delete, *creates))
    watched = Watched(directory)
    recap = scenario.apply(plan, watched, tmp_path / "2")
    assert (recap.failed, recap.changed) == (0, 4), recap.messages
    tombstone, removal, first, *_ = watched.log
    assert tombstone[0].startswith("add ")  # the tombstone, then the delete
    assert removal[0].startswith("delete ")
    assert first[0].startswith("add uid=") and not first[1]  # the delete answered first


def test_what_the_end_of_the_run_needs_is_made_ready_while_the_first_writes_fly(
    tmp_path: Path,
) -> None:
    """`meanwhile` runs once, after the first writes are sent and before any is answered."""
    directory, plan = deleting_and_creating(tmp_path, 4)
    watched = Watched(directory)
    log = tmp_path / "2" / "audit.jsonl"
    seen: list[tuple[int, int]] = []

    def meanwhile() -> None:
        written = [r for r in log.read_text(encoding="utf-8").splitlines() if '"create"' in r]
        seen.append((len(watched.log), sum('"outcome": "changed"' in r for r in written)))

    recap = scenario.apply(plan, watched, tmp_path / "2", meanwhile=meanwhile)
    assert (recap.failed, recap.changed) == (0, 5), recap.messages
    assert seen == [(4, 0)]  # the four creates sent, none answered yet; once


class Shy(Recording):
    """A look without waiting (`answers(wait=False)`) finds nothing `shy` times in a row, then
    every answer: the server still busy with the writes in flight meanwhile."""

    def __init__(self, directory: Directory, log: list[tuple[str, set[str]]], shy: int) -> None:
        super().__init__(directory, log)
        self.shy = shy
        self.looks = 0
        self.calls: list[bool] = []

    def answers(self, wait: bool = True) -> list[Answer]:
        self.calls.append(wait)
        if not wait and self.looks < self.shy:
            self.looks += 1
            return []
        self.looks = 0
        return super().answers(wait)


class ShyWatched(Watched):
    def __init__(self, inner: Directory, shy: int) -> None:
        super().__init__(inner)
        self.shy = Shy(self, self.log, shy)

    def pipeline(self, window: int) -> Pipeline:
        return self.shy


def test_idle_work_is_done_in_slices_while_writes_fly_and_no_answer_has_come(
    tmp_path: Path,
) -> None:
    """`idle` is called only while writes are in flight and none is answered; between two
    slices the answers are looked for (not waited for), and only once it says nothing is left
    does apply wait for them. It is given the outcomes so far."""
    directory, plan = deleting_and_creating(tmp_path, 4)
    watched = ShyWatched(directory, shy=2)
    seen: list[tuple[int, int, int]] = []

    def idle(outcomes: Sequence[Outcome]) -> bool:
        seen.append((len(watched.log), watched.shy.in_flight, len(outcomes)))
        return len(seen) != 3  # nothing left at the third slice

    recap = scenario.apply(plan, watched, tmp_path / "2", idle=idle)
    assert (recap.failed, recap.changed) == (0, 5), recap.messages
    # the four creates in flight: two slices, then the answers; the tombstone: one slice with
    # nothing left, then a wait; the delete: two slices
    assert seen == [(4, 4, 0), (4, 4, 0), (5, 1, 4), (6, 1, 4), (6, 1, 4)]
    assert watched.shy.calls == [False, False, False, False, True, False, False, False]


def test_idle_work_that_fails_is_given_up_and_the_run_goes_on(tmp_path: Path) -> None:
    directory, plan = deleting_and_creating(tmp_path, 4)
    watched = ShyWatched(directory, shy=3)
    calls: list[int] = []

    def idle(outcomes: Sequence[Outcome]) -> bool:
        calls.append(len(outcomes))
        raise ZeroDivisionError

    recap = scenario.apply(plan, watched, tmp_path / "2", idle=idle)
    assert (recap.failed, recap.changed) == (0, 5), recap.messages
    assert calls == [0]  # not called again
    assert [op.id for op, _, _ in recap.outcomes] == [op.id for op in plan.operations]


def test_the_rename_and_the_create_reusing_its_address_through_the_real_pipeline(
    slapd: Slapd, tmp_path: Path
) -> None:
    directory = scenario.connect(slapd, "python-ldap")
    try:
        plan = reusing_plan(directory, tmp_path, others=40)
        assert type(directory.pipeline(32)).__name__ == "_Pipeline"
        regulation = regulations.get(plan.regulation)
        drafts = notices.Drafts(regulation)  # the notices' items, while the writes fly
        recap = scenario.apply(plan, directory, tmp_path / "second", idle=drafts.step)
        assert (recap.failed, recap.changed) == (0, len(plan.operations)), recap.messages
        built = notices.build(plan, recap.outcomes, regulation, plan.now, (), drafts)
        assert not drafts.broken
        assert built == notices.build(plan, recap.outcomes, regulation, plan.now)
        rename, create = plan.operations[:2]
        moved = directory.get(rename.new_dn, READ)
        reused = directory.get(create.new_dn, READ)
        assert moved is not None and moved.mail == rename.address and moved.key == rename.id
        assert reused is not None and reused.mail == rename.previous and reused.key == "HG-0999"
        managed = [e for e in directory.read(BASE, READ) if e.managed]
        assert len({e.mail for e in managed}) == len(managed)
        passwords = scenario.passwords(tmp_path / "second")
        assert set(passwords) == {op.address for op in plan.operations[1:]}
    finally:
        directory.close()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_a_line_before_the_last_is_taken_back_and_the_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "creds.csv"
    with CredentialsFile(path) as creds:
        for name in ("a", "b", "c"):
            creds.add(f"{name}@x.gov.vn", f"Pw-{name}-123456789", sync=False)
        creds.sync()
        creds.settled("c@x.gov.vn")
        assert not creds.withdraw("c@x.gov.vn")  # its entry has it: for good
        assert creds.withdraw("a@x.gov.vn")  # answered out of order: not the last line
        assert lines(path) == [
            "address,password",
            "b@x.gov.vn,Pw-b-123456789",
            "c@x.gov.vn,Pw-c-123456789",
        ]
        assert creds.withdraw("b@x.gov.vn")
        creds.add("d@x.gov.vn", "Pw-d-123456789")  # appended after what is left
        assert creds.count == 2
    assert lines(path) == [
        "address,password",
        "c@x.gov.vn,Pw-c-123456789",
        "d@x.gov.vn,Pw-d-123456789",
    ]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["creds.csv"]


def test_a_file_whose_only_lines_got_no_answer_is_kept(tmp_path: Path) -> None:
    """The connection lost with every write in flight: none counts as handed over, but each
    entry may have been written with its password, so the file stays for the next run."""
    path = tmp_path / "creds.csv"
    with CredentialsFile(path) as creds:
        creds.add("a@x.gov.vn", "Pw-a-123456789")
        creds.unanswered("a@x.gov.vn")
        assert creds.count == 0
    assert lines(path) == ["address,password", "a@x.gov.vn,Pw-a-123456789"]
    with CredentialsFile(tmp_path / "other.csv") as creds:
        creds.add("b@x.gov.vn", "Pw-b-123456789")
        assert creds.withdraw("b@x.gov.vn")
    assert not (tmp_path / "other.csv").exists()  # nothing handed over: gone
