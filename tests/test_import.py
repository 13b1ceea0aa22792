"""`reconciler import` and adoption: a legacy directory becomes an inventory without changing an
address, a login, a DN or a password; the first plan adopts, the next is empty.

Pure tests of `reconciler.outputs.importer` first (no server), then the whole story on the
throwaway slapd.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import ldap3
import pytest
import yaml

from reconciler.devtools.throwaway import Slapd, ssha
from reconciler.inventory import loader as inventory
from reconciler.model import Action, Entry
from reconciler.outputs import importer

from . import scenario
from .helpers import admin_connection, run_cli

TODAY = dt.date(2026, 11, 23)
DOMAIN = "quangnam.gov.vn"


def entry(dn: str, **attrs: Any) -> Entry:
    classes = attrs.pop("objectClass", ("top", "person", "organizationalPerson", "inetOrgPerson"))
    values = {"objectclass": tuple(classes)}
    for name, value in attrs.items():
        values[name.lower()] = tuple(value) if isinstance(value, list | tuple) else (value,)
    return Entry(dn, values)


def options(**kw: Any) -> importer.Options:
    base = dict(
        regulation="quangnam-2020",
        domain=DOMAIN,
        base_dn="dc=legacy,dc=vn",
        people_base="ou=users,dc=legacy,dc=vn",
        today=TODAY,
        agency_attribute="departmentNumber",
    )
    base.update(kw)
    return importer.Options(**base)


def person(uid: str, name: str, agency: str = "Sở Y tế", **attrs: Any) -> Entry:
    attrs.setdefault("mail", f"{uid}@{DOMAIN}")
    return entry(
        f"uid={uid},ou=users,dc=legacy,dc=vn",
        uid=uid,
        cn=name,
        sn=name.split()[0],
        departmentNumber=agency,
        **attrs,
    )


def staff_of(result: importer.Result) -> dict[str, dict[str, Any]]:
    return {r["address"]: r for doc in result.agencies.values() for r in doc["staff"]}


def write(result: importer.Result, opts: importer.Options, folder: Path) -> Path:
    for rel, content in importer.files(result, opts).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content, encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------------------------
# Pure


def test_agency_ids_and_abbreviations_are_folded_deterministically() -> None:
    assert importer.agency_id("Sở Thông tin và Truyền thông") == "so-thong-tin-va-truyen-thong"
    assert importer.abbreviation("Sở Thông tin và Truyền thông") == "sotttt"
    assert importer.abbreviation("Sở Giáo dục và Đào tạo") == "sogddt"
    assert importer.abbreviation("Sở Y tế") == "soyte"
    assert importer.agency_id("Đài Phát thanh") == "dai-phat-thanh"
    assert importer.imported_id("NAM.NV@quangnam.gov.vn") == importer.imported_id(
        "nam.nv@quangnam.gov.vn"
    )
    assert (
        importer.imported_id("a@b.vn").startswith("IMP-") and len(importer.imported_id("x")) == 14
    )


def test_people_keep_their_address_name_and_state() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Văn Nam")
    entries = [
        entry("dc=legacy,dc=vn", objectClass=["dcObject", "organization"]),
        entry("ou=users,dc=legacy,dc=vn", objectClass=["organizationalUnit"]),
        person("nguyenvannam", nfd, title="Giám đốc", employeeNumber="QN-0001"),
        person("NAM.NV", "Ngô Văn Nam", mail="NAM.NV@quangnam.gov.vn", ou="Văn phòng"),
        person(
            "hue",
            "Huệ",
            pwdAccountLockedTime="000001010000Z",
            mail=["hue@quangnam.gov.vn", "hue.old@quangnam.gov.vn"],
        ),
        person("lan", "Trần Thị Lan", agency="SỞ Y TẾ", displayName="Trần Thị Lan"),
    ]
    result = importer.build(entries, options())
    assert result.left_out == ()
    assert list(result.agencies) == ["so-y-te"]  # "Sở Y tế" and "SỞ Y TẾ" are one agency
    doc = result.agencies["so-y-te"]
    assert doc["agency"] == {
        "id": "so-y-te",
        "name": "Sở Y tế",
        "abbreviation": "soyte",
        "units": [{"id": "van-phong", "name": "Văn phòng", "abbreviation": "vanphong"}],
    }
    staff = staff_of(result)
    assert staff["nguyenvannam@quangnam.gov.vn"] == {
        "id": "QN-0001",
        "name": "Nguyễn Văn Nam",  # NFC
        "title": "Giám đốc",
        "address": "nguyenvannam@quangnam.gov.vn",
    }
    assert staff["nam.nv@quangnam.gov.vn"]["unit"] == "van-phong"
    assert staff["nam.nv@quangnam.gov.vn"]["id"] == importer.imported_id("nam.nv@quangnam.gov.vn")
    hue = staff["hue@quangnam.gov.vn"]
    assert hue["given"] == "Huệ"  # one word: the split is given
    assert hue["state"] == "suspended"
    # quangnam-2020 has no suspension on request: the lock is recorded as found, never as a
    # breach of Đ7.2 (issue 16 item 7)
    assert hue["suspension"] == {"found_at_import": "2026-11-23"}
    assert hue["aliases"] == ["hue.old@quangnam.gov.vn"]
    assert [r["id"] for r in doc["staff"]] == sorted(r["id"] for r in doc["staff"])


def test_what_cannot_be_placed_is_reported_never_guessed() -> None:
    users = "ou=users,dc=legacy,dc=vn"
    entries = [
        person("dup", "Lê Văn An"),
        entry(
            f"uid=dup,ou=old,{users}",
            uid="dup",
            cn="Lê Văn Bình",
            mail="dup@quangnam.gov.vn",
            departmentNumber="Sở Y tế",
        ),
        person("c", "Lê Văn Cường", mail="c@gmail.com"),
        person("d", "Lê Văn Dũng", mail=[]),
        person("e", "NguyÔn V¨n E"),  # TCVN3 read as Windows-1252
        entry(
            f"uid=other,{users}",
            uid="other",
            cn="Lê Văn Phúc",
            mail="f@quangnam.gov.vn",
            departmentNumber="Sở Y tế",
        ),
        person("g", "Lê Văn Giang", agency=[]),
        person("h", "Lê Văn Hải", employeeNumber="số 7"),
        entry(
            f"cn=Le Van K,{users}",
            cn="Le Van K",
            displayName="Lê Văn K",
            mail="k@quangnam.gov.vn",
            departmentNumber="Sở Y tế",
        ),
        person("postmaster", "Postmaster Account"),
        entry(
            f"cn=relay,{users}",
            objectClass=["top", "extensibleObject"],
            cn="relay",
            mail="relay@quangnam.gov.vn",
        ),
        person(
            "ok", "Lê Văn Ổn", mail=["ok@quangnam.gov.vn", "x@gmail.com", "dup@quangnam.gov.vn"]
        ),
    ]
    result = importer.build(entries, options())
    why = {r.dn.removesuffix("," + users): r.reason for r in result.left_out}
    assert set(why) == {
        "uid=dup",
        "uid=dup,ou=old",
        "uid=c",
        "uid=d",
        "uid=e",
        "uid=g",
        "uid=h",
    }
    assert "duplicate mail dup@quangnam.gov.vn" in why["uid=dup"]
    assert "duplicate mail dup@quangnam.gov.vn" in why["uid=dup,ou=old"]
    assert "outside the directory's domain" in why["uid=c"]
    assert "no mail" in why["uid=d"]
    assert "looks like" in why["uid=e"]
    assert "no agency" in why["uid=g"]
    assert "cannot be an inventory id" in why["uid=h"]
    unmanaged = {r.dn.split(",")[0] for r in result.report if r.status == importer.UNMANAGED}
    assert unmanaged == {"uid=postmaster", "cn=relay"}
    notes = [r.reason for r in result.report if r.status == importer.NOTE]
    assert any("x@gmail.com" in n for n in notes)  # an alias outside the domain is dropped
    assert any("dup@quangnam.gov.vn is also held by" in n for n in notes)
    # a login other than the local part is kept as the login; a cn= entry keeps its cn and DN
    assert any("uid=other differs from the address's local part f: kept" in n for n in notes)
    assert any("named by cn=Le Van K: the entry keeps that cn" in n for n in notes)
    staff = staff_of(result)
    assert sorted(staff) == ["f@quangnam.gov.vn", "k@quangnam.gov.vn", "ok@quangnam.gov.vn"]
    assert staff["f@quangnam.gov.vn"]["login"] == "other"


def test_mapping_file_by_value_and_dn_suffix() -> None:
    mapping = importer.parse_map(
        {
            "SYT": {"id": "soyte", "name": "Sở Y tế", "abbreviation": "syt"},
            "So Y Te": "soyte",
            "ou=tt,ou=users,dc=legacy,dc=vn": {
                "id": "sotttt",
                "name": "Sở Thông tin và Truyền thông",
            },
        }
    )
    entries = [
        person("a", "Lê Văn An", agency="syt"),
        person("b", "Lê Văn Bình", agency="sở y tế"),
        entry(
            "uid=c,ou=tt,ou=users,dc=legacy,dc=vn",
            uid="c",
            cn="Lê Văn Cường",
            mail="c@quangnam.gov.vn",
        ),
        person("d", "Lê Văn Dũng", agency="Ban Quản lý"),  # not in the map: by its value
    ]
    result = importer.build(entries, options(mapping=mapping))
    assert result.left_out == ()
    assert {k: [r["address"] for r in d["staff"]] for k, d in result.agencies.items()} == {
        "ban-quan-ly": ["d@quangnam.gov.vn"],
        "sotttt": ["c@quangnam.gov.vn"],
        "soyte": [
            r for r in sorted(["a@quangnam.gov.vn", "b@quangnam.gov.vn"], key=importer.imported_id)
        ],
    }
    assert result.agencies["soyte"]["agency"]["abbreviation"] == "syt"
    assert result.agencies["sotttt"]["agency"]["abbreviation"] == "sotttt"
    with pytest.raises(importer.ImportProblem, match="neither an agency"):
        importer.parse_map({"x": "nowhere"})


def test_parent_ou_and_hagiang_abbreviation_avoids_taken_addresses() -> None:
    entries = [
        entry(
            "uid=soyte,ou=Sở Y tế,ou=users,dc=legacy,dc=vn",
            uid="soyte",
            cn="Lê Văn An",
            mail="soyte@hagiang.gov.vn",
        ),
        entry("uid=b,ou=users,dc=legacy,dc=vn", uid="b", cn="Lê Văn Bình", mail="b@hagiang.gov.vn"),
    ]
    result = importer.build(
        entries,
        options(regulation="hagiang-2024", domain="hagiang.gov.vn", agency_attribute="parent"),
    )
    assert [r.dn for r in result.left_out] == ["uid=b,ou=users,dc=legacy,dc=vn"]
    # soyte@ is a person's address: the organisation mailbox must not take it
    assert result.agencies["so-y-te"]["agency"]["abbreviation"] == "soyte2"


def test_written_inventory_is_readable_and_validates(tmp_path: Path) -> None:
    entries = [
        person("nguyenvannam", "Nguyễn Văn Nam", title="yes"),
        person("hue", "Huệ", pwdAccountLockedTime="000001010000Z", employeeNumber="0042"),
    ]
    opts = options()
    folder = write(importer.build(entries, opts), opts, tmp_path / "inv")
    text = (folder / "agencies" / "so-y-te.yaml").read_text(encoding="utf-8")
    assert "name: Nguyễn Văn Nam\n" in text
    assert "address: nguyenvannam@quangnam.gov.vn  # legacy address kept as issued" in text
    assert "id: '0042'" in text and "title: 'yes'" in text
    lines = [ln.strip(" -").split(":")[0] for ln in text.splitlines() if ln.startswith("  - id")]
    assert lines == ["id", "id"]
    loaded = inventory.load(folder)
    assert {p.id for p in loaded.people} == {"0042", importer.imported_id("nguyenvannam@" + DOMAIN)}
    assert yaml.safe_load((folder / "directory.yaml").read_text(encoding="utf-8")) == {
        "regulation": "quangnam-2020",
        "domain": DOMAIN,
        "base_dn": "dc=legacy,dc=vn",
        "people": "ou=users",  # where the imported mailboxes are: adopted from there only
    }
    report = (folder / "import-report.csv").read_text(encoding="utf-8")
    assert report.startswith("\ufeff")  # Excel opens the Vietnamese names as UTF-8
    header = next(csv.reader([report.lstrip("\ufeff").splitlines()[0]]))
    assert header == ["status", "dn", "mail", "reason"]


def test_a_legacy_role_address_is_pinned_with_the_statement_that_it_was_issued(
    tmp_path: Path,
) -> None:
    """A person's legacy `admin@` mailbox (a staff number says it is a person's) keeps its address
    pinned, with `legacy: true` after the comment: validate refuses a pin on a reserved local part
    without it (issue 14). Other pins do not need it and do not get it."""
    entries = [
        person("admin", "Hồ Văn Quản", employeeNumber="QN-0007"),
        person("nguyenvannam", "Nguyễn Văn Nam"),
    ]
    opts = options()
    result = importer.build(entries, opts)
    staff = staff_of(result)
    assert staff["admin@quangnam.gov.vn"]["legacy"] is True
    assert "legacy" not in staff["nguyenvannam@quangnam.gov.vn"]
    folder = write(result, opts, tmp_path / "inv")
    text = (folder / "agencies" / "so-y-te.yaml").read_text(encoding="utf-8")
    assert (
        "    address: admin@quangnam.gov.vn  # legacy address kept as issued\n    legacy: true\n"
    ) in text
    assert run_cli("validate", str(folder)).returncode == 0


# ---------------------------------------------------------------------------------------------
# On slapd

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Ngọc"]
GIVEN = ["Nam", "Lan", "Hùng", "Hương", "Sơn", "Dũng", "Thảo", "Phúc"]
AGENCIES = ["Sở Y tế", "SỞ Y TẾ", "Sở Thông tin và Truyền thông", "Sở Giáo dục và Đào tạo"]


def _ldif_value(name: str, value: str) -> str:
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}\n"


def _ldif(dn: str, attrs: dict[str, list[str]]) -> str:
    out = _ldif_value("dn", dn)
    for name, values in attrs.items():
        out += "".join(_ldif_value(name, v) for v in values)
    return out + "\n"


def legacy_directory(suffix: str) -> tuple[str, dict[str, str]]:
    """The LDIF of a legacy directory (about 300 entries) and the DNs expected in the report."""
    base = f"dc=legacy,{suffix}"
    users = f"ou=users,{base}"
    chunks = [
        _ldif(
            base, {"objectClass": ["dcObject", "organization"], "dc": ["legacy"], "o": ["legacy"]}
        ),
        _ldif(users, {"objectClass": ["organizationalUnit"], "ou": ["users"]}),
    ]
    expected: dict[str, str] = {}
    n = 0
    for f in FAMILY:
        for m in MIDDLE:
            for g in GIVEN[: 6 if m != "Văn" else 8]:
                n += 1
                name = f"{f} {m} {g}"
                folded = [importer.names.fold(w) for w in name.split()]
                style = n % 4
                if style == 0:
                    local = "".join(folded) + str(n)  # nguyenvannam12@
                elif style == 1:
                    local = f"{folded[-1]}.{folded[0][0]}{folded[1][0]}{n}"  # nam.nv12@
                elif style == 2:
                    local = f"{folded[-1]}{n}"
                else:
                    local = f"{folded[-1]}{folded[0][0]}{folded[1][0]}{n}"
                mail = f"{local}@{DOMAIN}"
                if n % 7 == 0:
                    mail = mail.upper()  # UPPERCASE in the directory
                stored = unicodedata.normalize("NFD" if n % 3 == 0 else "NFC", name)
                attrs = {
                    "objectClass": ["inetOrgPerson"],
                    "uid": [local.upper() if n % 7 == 0 else local],
                    "cn": [stored],
                    "sn": [f],
                    "mail": [mail],
                    "departmentNumber": [AGENCIES[n % 4]],
                    "userPassword": [ssha(f"Legacy-{n}!")],
                }
                if n % 2 == 0:
                    attrs["employeeNumber"] = [f"QN-{n:04d}"]
                if n % 5 == 0:
                    attrs["ou"] = ["Văn phòng"]
                if n % 11 == 0:
                    attrs["title"] = ["Chuyên viên"]
                chunks.append(_ldif(f"uid={attrs['uid'][0]},{users}", attrs))
    # the collisions a newcomer must avoid: Lê Văn Hùng → hunglv, then hunglv1, hunglv2
    for local, name in (("hunglv", "Lê Văn Hưng"), ("hunglv1", "Lưu Văn Hùng")):
        chunks.append(
            _ldif(
                f"uid={local},{users}",
                {
                    "objectClass": ["inetOrgPerson"],
                    "uid": [local],
                    "cn": [name],
                    "sn": ["Lê"],
                    "mail": [f"{local}@{DOMAIN}"],
                    "departmentNumber": ["Sở Y tế"],
                    "userPassword": [ssha("Legacy-h!")],
                },
            )
        )
    locked = f"uid=khoa,{users}"
    chunks.append(
        _ldif(
            locked,
            {
                "objectClass": ["inetOrgPerson"],
                "uid": ["khoa"],
                "cn": ["Phan Đăng Khoa"],
                "sn": ["Phan"],
                "mail": [f"khoa@{DOMAIN}"],
                "departmentNumber": ["Sở Y tế"],
                "pwdAccountLockedTime": ["000001010000Z"],
                "userPassword": [ssha("Legacy-k!")],
            },
        )
    )
    chunks.append(
        _ldif(
            f"uid=postmaster,{users}",
            {
                "objectClass": ["inetOrgPerson"],
                "uid": ["postmaster"],
                "cn": ["Postmaster"],
                "sn": ["Postmaster"],
                "mail": [f"postmaster@{DOMAIN}"],
                "userPassword": [ssha("Service-1!")],
            },
        )
    )
    for uid in ("dup1", "dup2"):
        dn = f"uid={uid},{users}"
        chunks.append(
            _ldif(
                dn,
                {
                    "objectClass": ["inetOrgPerson"],
                    "uid": [uid],
                    "cn": ["Võ Thị Mai"],
                    "sn": ["Võ"],
                    "mail": [f"vothimai@{DOMAIN}"],
                    "departmentNumber": ["Sở Y tế"],
                },
            )
        )
        expected[dn] = "duplicate mail"
    dn = f"uid=nomail,{users}"
    chunks.append(
        _ldif(
            dn,
            {
                "objectClass": ["inetOrgPerson"],
                "uid": ["nomail"],
                "cn": ["Đỗ Văn Tài"],
                "sn": ["Đỗ"],
                "departmentNumber": ["Sở Y tế"],
            },
        )
    )
    expected[dn] = "no mail"
    dn = f"uid=gmail,{users}"
    chunks.append(
        _ldif(
            dn,
            {
                "objectClass": ["inetOrgPerson"],
                "uid": ["gmail"],
                "cn": ["Đỗ Văn Tú"],
                "sn": ["Đỗ"],
                "mail": ["gmail@gmail.com"],
                "departmentNumber": ["Sở Y tế"],
            },
        )
    )
    expected[dn] = "outside the directory's domain"
    return "".join(chunks), expected


def read_all(slapd: Slapd, base: str) -> dict[str, dict[str, list[str]]]:
    with admin_connection(slapd) as conn:
        conn.search(base, "(objectClass=*)", attributes=["*", "+"])
        return {
            e.entry_dn: {
                k.lower(): sorted(x.decode("utf-8", "replace") for x in v)
                for k, v in e.entry_raw_attributes.items()
            }
            for e in conn.entries
        }


@pytest.mark.slapd
def test_import_adopt_then_nothing_to_do(slapd: Slapd, tmp_path: Path) -> None:
    body, expected = legacy_directory(slapd.suffix)
    ldif = tmp_path / "legacy.ldif"
    ldif.write_text(body, encoding="utf-8")
    slapd.reset(ldif)
    base = f"dc=legacy,{slapd.suffix}"
    before = read_all(slapd, base)
    assert len(before) > 300
    folder = tmp_path / "inv"

    env = {"RECONCILER_BIND_PASSWORD": slapd.root_pw}
    args = [
        "import",
        "--directory",
        slapd.url,
        "--bind-dn",
        slapd.root_dn,
        "--out",
        str(folder),
        "--regulation",
        "quangnam-2020",
        "--base-dn",
        base,
        "--people-base",
        f"ou=users,{base}",
        "--agency-attribute",
        "departmentNumber",
        "--now",
        "2026-11-23",
    ]
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    again = run_cli(*args, env=env)  # refuses to overwrite
    assert again.returncode == 1 and "not empty" in again.stderr
    valid = run_cli("validate", str(folder))
    assert valid.returncode == 0, valid.stderr

    with (folder / "import-report.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    left_out = {r["dn"]: r["reason"] for r in rows if r["status"] == "left out"}
    assert set(left_out) == set(expected)
    for dn, why in expected.items():
        assert why in left_out[dn]
    assert [r["dn"] for r in rows if r["status"] == "unmanaged"] == [
        f"uid=postmaster,ou=users,{base}"
    ]
    assert sorted(p.name for p in (folder / "agencies").iterdir()) == [
        "so-giao-duc-va-dao-tao.yaml",
        "so-thong-tin-va-truyen-thong.yaml",
        "so-y-te.yaml",
    ]

    directory = scenario.connect(slapd)
    try:
        first = scenario.plan(folder, directory)
        inv = inventory.load(folder)
        assert len(first.operations) == len(inv.people) == len(before) - 2 - 1 - len(expected)
        assert {op.action for op in first.operations} == {Action.UPDATE}
        assert all(op.reason.startswith("adopts the existing entry") for op in first.operations)
        for op in first.operations:
            changed = {c.attr for c in op.changes}
            assert {"objectClass", "employeeNumber", "govMailKind"} <= changed
            assert not changed & {"mail", "uid", "userPassword"}
        assert first.unmanaged == tuple(sorted([f"uid=postmaster,ou=users,{base}", *expected]))
        recap = scenario.apply(first, directory, tmp_path / "out")
        assert recap.failed == 0 and recap.changed == len(first.operations), recap.messages
        second = scenario.plan(folder, directory)
        assert second.empty, [(op.action, op.id, op.reason) for op in second.operations]

        after = read_all(slapd, base)
        lock = f"cn=reconciler-lock,{base}"  # the tool's own lock entry, left free
        assert set(after) - {lock} == set(before)  # no DN changed, nothing created or deleted
        for dn, attrs in before.items():
            for attr in ("mail", "uid", "userpassword", "pwdaccountlockedtime", "entryuuid"):
                assert after[dn].get(attr) == attrs.get(attr), (dn, attr)
        service = f"uid=postmaster,ou=users,{base}"
        assert after[service] == before[service]
        khoa = after[f"uid=khoa,ou=users,{base}"]
        assert khoa["govmailsuspendreason"] == ["found suspended at import on 2026-11-23"]
        assert "govMailAccount" in khoa["objectclass"]

        # a newcomer: the regulation's address, avoiding every legacy one (hunglv, hunglv1)
        path = folder / "agencies" / "so-y-te.yaml"
        path.write_text(
            path.read_text(encoding="utf-8") + "  - id: QN-9001\n    name: Lê Văn Hùng\n",
            encoding="utf-8",
        )
        third = scenario.plan(folder, directory)
        assert [(op.action, op.id, op.address) for op in third.operations] == [
            (Action.CREATE, "QN-9001", "hunglv2@quangnam.gov.vn")
        ]
        legacy = {m.lower() for a in before.values() for m in a.get("mail", [])}
        assert third.operations[0].address not in legacy
        assert scenario.apply(third, directory, tmp_path / "out").failed == 0

        # a rename of an adopted entry works from its legacy DN, in place
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        target = next(r for r in doc["staff"] if r["address"] == "hunglv@quangnam.gov.vn")
        text = path.read_text(encoding="utf-8").replace(
            "    address: hunglv@quangnam.gov.vn  # legacy address kept as issued\n", ""
        )
        path.write_text(
            text.replace(f"name: {target['name']}\n", "name: Lê Văn Hoà\n", 1), encoding="utf-8"
        )
        fourth = scenario.plan(folder, directory)
        assert [(op.action, op.id) for op in fourth.operations] == [(Action.RENAME, target["id"])]
        assert fourth.operations[0].new_dn == f"uid=hoalv,ou=users,{base}"
        assert scenario.apply(fourth, directory, tmp_path / "out").failed == 0
        assert scenario.plan(folder, directory).empty
        moved = read_all(slapd, base)[f"uid=hoalv,ou=users,{base}"]
        assert moved["govmailalias"] == ["hunglv@quangnam.gov.vn"]
        assert moved["userpassword"] == before[f"uid=hunglv,ou=users,{base}"]["userpassword"]
    finally:
        directory.close()


def test_real_layouts_are_adopted_without_a_rename_or_a_password_change(
    slapd: Slapd, tmp_path: Path
) -> None:
    """What merge sources look like after years: uid the whole address, uid not the local part,
    entries in several containers, `cn=` RDNs, a person's legacy `admin@` mailbox (a staff
    number says it is a person's): each adopted in place, its login and password kept; the
    plan after the adoption is empty. An import that imports nothing exits 1."""
    base = f"dc=quangtri,{slapd.suffix}"
    chunks = [
        _ldif(base, {"objectClass": ["dcObject", "organization"], "dc": ["quangtri"],
                     "o": ["quangtri"]}),
        _ldif(f"ou=staff,{base}", {"objectClass": ["organizationalUnit"], "ou": ["staff"]}),
        _ldif(f"ou=so-yte,ou=staff,{base}", {"objectClass": ["organizationalUnit"],
                                             "ou": ["so-yte"]}),
        _ldif(f"ou=old,{base}", {"objectClass": ["organizationalUnit"], "ou": ["old"]}),
    ]  # fmt: skip
    people = {
        f"uid=hoatt@quangtri.gov.vn,ou=staff,{base}": ("hoatt@quangtri.gov.vn", "Trần Thị Hoa",
                                                        "hoatt@quangtri.gov.vn", None),
        f"uid=lenhung,ou=so-yte,ou=staff,{base}": ("lenhung", "Lê Nhung", "nhungl@quangtri.gov.vn",
                                                   None),
        f"cn=Nguyễn Văn Phúc,ou=old,{base}": (None, "Nguyễn Văn Phúc", "phucnv@quangtri.gov.vn",
                                              None),
        f"uid=admin,ou=staff,{base}": ("admin", "Hồ Văn Quản", "admin@quangtri.gov.vn", "QT-0007"),
    }  # fmt: skip
    for dn, (uid, name, mail, number) in people.items():
        attrs = {"objectClass": ["inetOrgPerson"], "cn": [name], "sn": [name.split()[0]],
                 "mail": [mail], "o": ["Sở Y tế"]}  # fmt: skip
        attrs["userPassword"] = [ssha(f"Cu-{mail}")]
        if uid:
            attrs["uid"] = [uid]
        if number:
            attrs["employeeNumber"] = [number]
        chunks.append(_ldif(dn, attrs))
    ldif = tmp_path / "legacy.ldif"
    ldif.write_text("".join(chunks[1:]), encoding="utf-8")
    with admin_connection(slapd) as conn:
        conn.add(base, ["dcObject", "organization"], {"dc": "quangtri", "o": "quangtri"})
    subprocess.run(
        ["ldapadd", "-x", "-H", slapd.url, "-D", slapd.root_dn, "-w", slapd.root_pw, "-f",
         str(ldif)], check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "inv"
    args = ["import", "--directory", slapd.url, "--bind-dn", slapd.root_dn, "--out", str(out),
            "--regulation", "quangnam-2020", "--domain", "quangtri.gov.vn", "--base-dn", base,
            "--agency-attribute", "o"]  # fmt: skip
    env = {"RECONCILER_BIND_PASSWORD": slapd.root_pw}
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.output
    records = {
        r["address"]: r
        for f in (out / "agencies").glob("*.yaml")
        for r in yaml.safe_load(f.read_text(encoding="utf-8"))["staff"]
    }
    assert set(records) == {m for _, _, m, _ in people.values()}
    assert records["hoatt@quangtri.gov.vn"]["login"] == "hoatt@quangtri.gov.vn"
    assert records["nhungl@quangtri.gov.vn"]["login"] == "lenhung"
    assert "login" not in records["admin@quangtri.gov.vn"]
    assert run_cli("validate", str(out)).returncode == 0
    with scenario.connect(slapd) as d:
        adopt = scenario.plan(out, d)
        assert {op.action for op in adopt.operations} == {Action.UPDATE}
        assert {op.dn for op in adopt.operations} == set(people)
        scenario.apply(adopt, d, tmp_path / "apply")
        assert scenario.plan(out, d).empty
    for dn, (_, _, mail, _) in people.items():
        conn = ldap3.Connection(slapd.url, user=dn, password=f"Cu-{mail}")
        try:
            assert conn.bind(), dn  # the DN and the password are as they were
        finally:
            conn.unbind()
    # nothing to import: the report says why, and the command fails
    empty = run_cli(*args[:-6], "--out", str(tmp_path / "none"), "--regulation", "quangnam-2020",
                    "--domain", "example.gov.vn", "--base-dn", base, env=env)  # fmt: skip
    assert empty.returncode == 1 and "no mailbox was imported" in empty.stderr
    assert (tmp_path / "none" / "import-report.csv").exists()
