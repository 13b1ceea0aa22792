"""The audit log: what is synced to disk at once, and what in bulk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.applying import audit as audit_module
from reconciler.applying.audit import AuditLog


def test_records_reach_the_file_at_once_and_bulk_changes_are_synced_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = audit_module.os.fsync
    monkeypatch.setattr(audit_module.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, run="r", actor="a", plan_digest="d", commit="c", directory="ldap://x")
    log.record("apply", outcome="started")
    assert len(synced) == 1  # starting records are synced at once
    for i in range(500):
        log.record("update", id=f"HG-{i:04d}", outcome="changed", before={}, after={"title": ["x"]})
    # every record is in the file (a killed process loses none) ...
    assert len(path.read_text(encoding="utf-8").splitlines()) == 501
    # ... but 500 quick changes are not 500 disk syncs
    assert len(synced) < 1 + 500 // 10
    before = len(synced)
    log.record("delete", id="HG-0001", outcome="started")  # before an irreversible delete
    log.record("update", id="HG-0002", outcome="failed", message="boom")
    assert len(synced) == before + 2
    log.close()
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [r["outcome"] for r in records[-2:]] == ["started", "failed"]


def new_log(path: Path) -> AuditLog:
    return AuditLog(path, run="r", actor="a", plan_digest="d", commit="c", directory="ldap://x")


def test_a_torn_last_line_is_skipped_when_read_and_repaired_by_the_next_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = new_log(path)
    log.record("apply", outcome="started")
    log.close()
    with path.open("ab") as f:
        f.write(b'{"event": "create", "id": "HG-0001", "outco')  # cut off: a full disk
    records, problems, torn = audit_module.read(path)
    assert len(records) == 1 and problems == []
    assert torn == '{"event": "create", "id": "HG-0001", "outco'
    log = new_log(path)  # the next apply appends: not onto the half line
    log.record("apply", outcome="done")
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(x) for x in lines]  # every line is a whole record again
    assert [r["event"] for r in records] == ["apply", "repair", "apply"]
    assert records[1]["fragment"].startswith('{"event": "create"')
    assert audit_module.read(path)[1:] == ([], None)


def test_a_write_cut_short_leaves_no_half_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    log = new_log(path)
    log.record("apply", outcome="started")
    real_write = audit_module.os.write

    def full_disk(fd: int, data: bytes) -> int:
        if len(data) > 300:  # what fits of a long record is written, then the disk is full
            real_write(fd, data[:100])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(audit_module.os, "write", full_disk)
    with pytest.raises(audit_module.ReconcilerError, match="No space left on device"):
        log.record("update", id="HG-1", outcome="changed", before={}, after={"title": ["x" * 400]})
    assert path.read_bytes().endswith(b"\n")
    assert log.last_words("failed", "x" * 400)  # the long message does not fit; a short one does
    log.close()
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [(r["event"], r["outcome"]) for r in records] == [
        ("apply", "started"),
        ("apply", "failed"),
    ]
    assert "message" not in records[-1]


def test_no_password_hash_of_any_kind_reaches_a_record(tmp_path: Path) -> None:
    """A delete records the entry as it was; a legacy entry that also serves Samba holds NT and
    LM hashes beside userPassword, which the log must not keep either."""
    path = tmp_path / "audit.jsonl"
    log = new_log(path)
    before = {
        "cn": ["Nguyễn Văn Sơn"],
        "userPassword": ["{SSHA}secret-1"],
        "sambaNTPassword": ["SECRET2NTHASH"],
        "sambaLMPassword": ["SECRET3LMHASH"],
        "authPassword": ["SECRET4"],
    }
    log.record("delete", id="HG-0001", outcome="started", before=before)
    log.close()
    text = path.read_text(encoding="utf-8")
    assert "Nguyễn Văn Sơn" in text
    assert "secret" not in text.lower()


def test_a_password_counts_as_used_once_its_mailbox_is_written_by_this_run_or_found_by_the_next(
    tmp_path: Path,
) -> None:
    """`used_passwords`: what apply says is void when a mailbox is created again. A write
    recorded "changed", or found done by the next run ("ok"), used its password; a line taken
    back (failed, withdrawn) did not; a voided one is void already."""
    log = AuditLog(
        tmp_path / "audit.jsonl", run="r", actor="a", plan_digest="d", commit="c", directory="x"
    )
    for address, end in (("a@x.vn", "changed"), ("b@x.vn", "ok"), ("c@x.vn", "failed")):
        log.record("create", address=address, credentials="/s/c1.csv", outcome="pending")
        log.record(
            "create",
            address=address,
            outcome=end,
            **({"withdrawn": True} if end == "failed" else {}),
        )
    log.record("create", address="d@x.vn", credentials="/s/c1.csv", outcome="pending")
    log.record("create", address="d@x.vn", outcome="changed")
    log.record("password", address="d@x.vn", credentials="/s/c1.csv", outcome="voided")
    log.close()
    wanted = {"a@x.vn", "b@x.vn", "c@x.vn", "d@x.vn", "e@x.vn"}
    used = audit_module.used_passwords(tmp_path / "audit.jsonl", wanted)
    assert sorted(used) == ["a@x.vn", "b@x.vn"]
    assert used["a@x.vn"].file == "/s/c1.csv"
    assert audit_module.used_passwords(tmp_path / "audit.jsonl", {"e@x.vn"}) == {}
