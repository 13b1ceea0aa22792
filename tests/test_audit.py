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
