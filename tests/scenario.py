"""Build inventories in code and run plan / apply through the library, for multi-step scenarios.

An inventory is a dict: {"regulation", "domain", "base_dn", "agencies": {id: {"name",
"abbreviation", "units": [...], "staff": [...], ...}}}; `write()` turns it into the folder format.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import yaml

from reconciler.applying.apply import Recap, execute
from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, open_directory
from reconciler.model import Plan
from reconciler.planning import pipeline
from reconciler.planning.plan import Context
from reconciler.planning.planfile import digest

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parent.parent


BASE_HG = "dc=hagiang,dc=example,dc=gov,dc=vn"
BASE_QN = "dc=quangnam,dc=example,dc=gov,dc=vn"


def hg(base_dn: str = BASE_HG) -> dict[str, Any]:
    return {
        "regulation": "hagiang-2024",
        "domain": "hagiang.gov.vn",
        "base_dn": base_dn,
        "agencies": {
            "sotttt": {
                "name": "Sở Thông tin và Truyền thông",
                "abbreviation": "sotttt",
                "units": [{"id": "vanphong", "name": "Văn phòng", "abbreviation": "vanphong"}],
                "staff": [
                    {"id": "HG-0001", "name": "Nguyễn Văn Sơn", "title": "Giám đốc", "rank": 1},
                ],
            },
            "soyte": {
                "name": "Sở Y tế",
                "abbreviation": "soyte",
                "staff": [{"id": "HG-0101", "name": "Trần Thị Lan", "title": "Chuyên viên"}],
            },
        },
    }


def qn(base_dn: str = BASE_QN) -> dict[str, Any]:
    return {
        "regulation": "quangnam-2020",
        "domain": "quangnam.gov.vn",
        "base_dn": base_dn,
        "agencies": {
            "sotttt": {
                "name": "Sở Thông tin và Truyền thông",
                "abbreviation": "sotttt",
                "staff": [
                    {"id": "QN-0001", "name": "Nguyễn Văn Nam", "title": "Giám đốc", "rank": 1},
                ],
            },
            "soyte": {
                "name": "Sở Y tế",
                "abbreviation": "soyte",
                "staff": [{"id": "QN-0101", "name": "Trần Thị Lan", "title": "Chuyên viên"}],
            },
        },
    }


def write(spec: dict[str, Any], folder: Path) -> Path:
    """Write the inventory folder (replacing what was there) and return it."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "agencies").mkdir(parents=True)
    settings = {k: v for k, v in spec.items() if k != "agencies"}
    (folder / "directory.yaml").write_text(
        yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    for agency_id, agency in spec["agencies"].items():
        body = {k: v for k, v in agency.items() if k != "staff"}
        doc = {"agency": {"id": agency_id, **body}, "staff": agency.get("staff", [])}
        (folder / "agencies" / f"{agency_id}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    return folder


def copy_example(name: str, folder: Path, base_dn: str) -> Path:
    """A bundled example inventory with its base DN moved under the test server's suffix."""
    shutil.copytree(ROOT / "inventory" / name, folder)
    settings = folder / "directory.yaml"
    text = settings.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    settings.write_text(text.replace(data["base_dn"], base_dn), encoding="utf-8")
    return folder


def clone(spec: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(spec)


def connect(server: Slapd, backend: str | None = None) -> Directory:
    """The server's directory as its rootdn, through `backend` (by default python-ldap when
    installed)."""
    return open_directory(
        server.url, bind_dn=server.root_dn, password=server.root_pw, backend=backend
    )


def plan(folder: Path, directory: Directory, now: dt.datetime = NOW, **kw: Any) -> Plan:
    """The plan through the pipeline, without the guard on deletions and suspensions (the tests
    that want it call `check_limits`)."""
    loaded = pipeline.load(folder)
    entries = pipeline.read(directory, loaded)
    identity = pipeline.identity(directory, loaded)
    context = Context(now=now, directory_url=directory.url, directory_identity=identity, **kw)
    return pipeline.make_plan(loaded, entries, context, limits=None)


def apply(result: Plan, directory: Directory, tmp: Path, **kw: Any) -> Recap:
    """Apply through the library, with credentials and audit files in `tmp` (outside git)."""
    tmp.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp.glob("credentials-*.csv")))
    d = digest(result)
    audit = AuditLog(tmp / "audit.jsonl", run=d, actor="test", plan_digest=d, commit="",
                     directory=directory.url)
    with CredentialsFile(tmp / f"credentials-{n}.csv") as creds:
        try:
            return execute(result, d, directory, audit, creds, actor="test", **kw)
        finally:
            audit.close()
            directory.flush()


def passwords(tmp: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(tmp.glob("credentials-*.csv")):
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            address, password = line.split(",", 1)
            found[address] = password
    return found
