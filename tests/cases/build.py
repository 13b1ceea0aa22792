"""Rebuild the golden cases' inventories and "before" directories (run from the repo root):

    .venv/bin/python -m tests.cases.build

Each case is a folder with `inventory/` (what the pull request proposes), `directory.ldif` (the
directory before it: an earlier inventory applied to an LDIF file, plus hand-made entries), and the
expected plans `plan.txt`, `plan.md`, `plan.json`, refreshed by `UPDATE_GOLDEN=1 pytest
tests/test_golden.py`. Passwords are stripped from the LDIF files.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from reconciler.directory import open_directory

from .. import scenario

HERE = Path(__file__).resolve().parent
BASE_HG = "dc=hagiang,dc=gov,dc=vn"
BASE_QN = "dc=quangnam,dc=gov,dc=vn"
SERVICE = {
    "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
    "cn": ["Hộp thư hệ thống"],
    "sn": ["system"],
    "uid": ["noreply-hethong"],
}


def hg_before() -> dict[str, Any]:
    spec = scenario.hg(BASE_HG)
    spec["agencies"]["sotttt"]["staff"] += [
        {"id": "HG-0002", "name": "Ngô Văn Sơn", "title": "Phó Giám đốc", "rank": 2},
        {"id": "HG-0005", "name": "Giàng Seo Lử", "unit": "vanphong", "title": "Chuyên viên"},
        {"id": "HG-0006", "name": "Đỗ Mạnh Hùng", "title": "Chuyên viên"},
    ]
    spec["agencies"]["soyte"]["staff"] += [
        {"id": "HG-0102", "name": "Bàn Văn Mình", "title": "Kế toán"},
    ]
    return spec


def hg_after(before: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(before)
    sotttt, soyte = spec["agencies"]["sotttt"], spec["agencies"]["soyte"]
    # a transfer: Trần Thị Lan moves from soyte to sotttt (a rename under hagiang-2024)
    sotttt["staff"].append(soyte["staff"].pop(0))
    # a hire whose plain address is taken: collision (b), same folded name
    sotttt["staff"].append({"id": "HG-0007", "name": "Nguyễn Văn Sơn", "title": "Chuyên viên"})
    # a promotion
    sotttt["staff"][2]["title"] = "Chánh Văn phòng"
    # a declared suspension
    sotttt["staff"][3].update(
        state="suspended",
        suspension={"clause": "HG-2024 Đ8.2.b", "note": "tài khoản bị lộ mật khẩu, CV 45/STTTT"},
    )
    # a departure: Bàn Văn Mình is removed from soyte's file
    soyte["staff"].clear()
    return spec


def qn_before() -> dict[str, Any]:
    spec = scenario.qn(BASE_QN)
    spec["agencies"]["sotttt"]["staff"] += [
        {"id": "QN-0002", "name": "Nguyễn Thị Tú Vân", "title": "Chuyên viên"},
        {"id": "QN-0003", "name": "Tôn Nữ Thị Hà", "family": "Tôn Nữ", "given": "Hà"},
    ]
    spec["agencies"]["soyte"]["staff"] += [
        {"id": "QN-0103", "name": "Alăng Thị Bốn", "title": "Y sĩ", "state": "suspended",
         "suspension": {"clause": "QN-2020 Đ7.2", "note": "vi phạm quy chế, CV 12/SYT"}},
    ]
    return spec


def qn_after(before: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(before)
    sotttt, soyte = spec["agencies"]["sotttt"], spec["agencies"]["soyte"]
    # a transfer: only an update under quangnam-2020 (no agency in the address)
    sotttt["staff"].append(soyte["staff"].pop(0))
    # a newcomer with the same name and a better rank: the issued address stays, she gets vanntt1
    sotttt["staff"].append({"id": "QN-0004", "name": "Nguyễn Thị Tú Vân", "title": "Trưởng phòng",
                            "rank": 3})
    # a name correction that changes the address: a rename
    sotttt["staff"][2]["name"] = "Tôn Nữ Thị Hoa"
    sotttt["staff"][2]["given"] = "Hoa"
    # the suspension is lifted
    soyte["staff"][0]["state"] = "active"
    del soyte["staff"][0]["suspension"]
    return spec


def build(name: str, before: dict[str, Any], after: dict[str, Any], base: str) -> None:
    case = HERE / name
    case.mkdir(exist_ok=True)
    ldif = case / "directory.ldif"
    ldif.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = scenario.write(before, tmp / "before")
        directory = open_directory(f"ldif:{ldif}")
        first = scenario.plan(folder, directory, now=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
        scenario.apply(first, directory, tmp / "out")
        service = {**SERVICE, "mail": [f"noreply-hethong@{before['domain']}"]}
        directory.add(f"uid=noreply-hethong,{base}", service)
        directory.close()
    text = "".join(
        line for line in ldif.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.lower().startswith("userpassword")
    )
    ldif.write_text(text, encoding="utf-8")
    if (case / "inventory").exists():
        shutil.rmtree(case / "inventory")
    scenario.write(after, case / "inventory")


def main() -> None:
    before = hg_before()
    build("hagiang-changes", before, hg_after(before), BASE_HG)
    before = qn_before()
    build("quangnam-changes", before, qn_after(before), BASE_QN)
    empty = HERE / "hagiang-empty"
    empty.mkdir(exist_ok=True)
    (empty / "directory.ldif").write_text("version: 1\n", encoding="utf-8")
    scenario.write(hg_before(), empty / "inventory")


if __name__ == "__main__":
    main()
