"""Synthetic provinces for tests and benchmarks: realistic Vietnamese staff lists, deterministic.

    spec = generate(100_000, seed=1)                 # a province as plain data (pure)
    changed = mutate(spec, seed=2, transfers=250)    # the same province after some changes (pure)
    text = "".join(converged_ldif(inventory.load(folder), now=NOW))   # the directory after apply
    write(changed, folder, ldif=("converged.ldif", text))             # the only function with I/O

A spec is a dict in the shape of the inventory folder: `regulation`, `domain`, `base_dn`,
`quota`, `max_deletes`, `reserved`, and `agencies` mapping each agency id to its `name`,
`abbreviation`, `manager`, `units` and `staff` (records exactly as in `agencies/<id>.yaml`).

Names follow the distribution of Vietnamese family names (Nguyễn about 38 %, Trần 11 %, Lê 9.5 %,
Phạm 7 %, Hoàng/Huỳnh 5 % …), middle names (Văn and Thị dominant; Hữu, Đức, Minh, Ngọc, Thu,
Thanh …; some two-word middle names), and a share of ethnic-minority names (H'Mông: Giàng, Sùng,
Vàng … with Seo or Mí; Dao: Triệu, Bàn with Văn, Thị, Tà; Ê Đê: given name first, written with
`family`/`given` overrides). Some full names are repeated on purpose, so every collision rule is
exercised. Each agency has a head (rank 1) and deputies (rank 2).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.attributes import format_time, people_dn
from reconciler.dn import parse_dn
from reconciler.model import Action, Inventory, resolve
from reconciler.planning.plan import Context, compute
from reconciler.rules.regulations import get as get_regulation

Spec = dict[str, Any]

#: (family name, weight in percent); the Kinh majority.
FAMILY = (
    ("Nguyễn", 38.0),
    ("Trần", 11.0),
    ("Lê", 9.5),
    ("Phạm", 7.0),
    ("Hoàng", 3.0),
    ("Huỳnh", 2.0),
    ("Phan", 4.5),
    ("Vũ", 2.0),
    ("Võ", 1.9),
    ("Đặng", 2.1),
    ("Bùi", 2.0),
    ("Đỗ", 1.4),
    ("Hồ", 1.3),
    ("Ngô", 1.3),
    ("Dương", 1.0),
    ("Lý", 0.5),
    ("Đinh", 0.7),
    ("Trương", 0.6),
    ("Lương", 0.4),
    ("Mai", 0.4),
    ("Cao", 0.3),
    ("Lâm", 0.3),
    ("Tạ", 0.2),
    ("Quách", 0.1),
    ("Âu", 0.1),
)
MIDDLE_MALE = (("Văn", 45), ("Hữu", 8), ("Đức", 9), ("Minh", 10), ("Quang", 6), ("Thanh", 5),
               ("Công", 5), ("Xuân", 4), ("Mạnh", 4), ("Tiến", 4))  # fmt: skip
MIDDLE_FEMALE = (("Thị", 55), ("Ngọc", 10), ("Thu", 8), ("Thanh", 7), ("Minh", 5), ("Kim", 5),
                 ("Thùy", 5), ("Hồng", 5))  # fmt: skip
TWO_MIDDLE = ("Thị Thu", "Thị Ngọc", "Văn Minh", "Hữu Quang", "Thị Kim", "Đức Anh", "Thị Thanh")
GIVEN_MALE = tuple(
    [
        "Sơn",
        "Nam",
        "Hùng",
        "Dũng",
        "Tuấn",
        "Minh",
        "Long",
        "Hải",
        "Cường",
        "Thắng",
        "Trung",
        "Quân",
        "Phong",
        "Khánh",
        "Bình",
        "Huy",
        "Đạt",
        "Hiếu",
        "Tùng",
        "Việt",
        "Hoàng",
        "Thành",
        "Lâm",
        "Quang",
        "Toàn",
        "Vinh",
        "Phúc",
        "Kiên",
        "Thịnh",
        "An",
    ]
)
GIVEN_FEMALE = tuple(
    [
        "Lan",
        "Hương",
        "Hoa",
        "Mai",
        "Linh",
        "Trang",
        "Hà",
        "Thảo",
        "Ngọc",
        "Huyền",
        "Vân",
        "Yến",
        "Nhung",
        "Thủy",
        "Phương",
        "Dung",
        "Hằng",
        "Nga",
        "Loan",
        "Oanh",
        "Tú Vân",
        "Thu Hà",
        "Anh",
        "Chi",
        "Giang",
        "My",
        "Nhâm",
        "Quyên",
        "Tâm",
        "Uyên",
    ]
)
HMONG_FAMILY = ("Giàng", "Sùng", "Vàng", "Thào", "Lầu", "Hầu", "Mùa")
HMONG_GIVEN = ("Lử", "Chứ", "Páo", "Dúa", "Mỷ", "Sinh", "Chá", "Pó", "Dở", "Xó")
DAO_FAMILY = ("Triệu", "Bàn", "Lý", "Đặng")
DAO_GIVEN = ("Phin", "Quẩy", "Mẩy", "Chàn", "Sành", "Lìu", "Tòn")
EDE_FAMILY = ("Niê", "Êban", "Mlô", "Ksơr", "Byă", "Adrơng", "Niê Kdăm")
EDE_GIVEN_MALE = ("Y Ngông", "Y Mốt", "Y Khoa", "Y Bih", "Y Tlam")
EDE_GIVEN_FEMALE = ("H'Hen", "H'Bia", "H'Linh", "H'Xíu", "H'Nơ")

AGENCIES = (
    ("vpubnd", "Văn phòng Ủy ban nhân dân tỉnh"),
    ("sotttt", "Sở Thông tin và Truyền thông"),
    ("soyte", "Sở Y tế"),
    ("sogddt", "Sở Giáo dục và Đào tạo"),
    ("sotc", "Sở Tài chính"),
    ("sokhdt", "Sở Kế hoạch và Đầu tư"),
    ("sonv", "Sở Nội vụ"),
    ("sotp", "Sở Tư pháp"),
    ("socongthuong", "Sở Công Thương"),
    ("sonnptnt", "Sở Nông nghiệp và Phát triển nông thôn"),
    ("sotnmt", "Sở Tài nguyên và Môi trường"),
    ("sogtvt", "Sở Giao thông vận tải"),
    ("soxd", "Sở Xây dựng"),
    ("sovhttdl", "Sở Văn hóa, Thể thao và Du lịch"),
    ("sokhcn", "Sở Khoa học và Công nghệ"),
    ("soldtbxh", "Sở Lao động – Thương binh và Xã hội"),
    ("thanhtra", "Thanh tra tỉnh"),
    ("bandantoc", "Ban Dân tộc"),
)
PLACES = ("Đồng Văn", "Mèo Vạc", "Yên Minh", "Quản Bạ", "Bắc Mê", "Vị Xuyên", "Bắc Quang",
          "Quang Bình", "Xín Mần", "Hoàng Su Phì", "Lũng Cú", "Phố Bảng", "Sủng Là", "Tam Sơn",
          "Thanh Thủy", "Việt Lâm", "Tân Quang", "Vĩnh Tuy", "Yên Phú", "Na Hang")  # fmt: skip
UNITS = (
    ("vanphong", "Văn phòng"),
    ("thanhtra", "Thanh tra"),
    ("tccb", "Phòng Tổ chức cán bộ"),
    ("khtc", "Phòng Kế hoạch – Tài chính"),
    ("nghiepvu", "Phòng Nghiệp vụ"),
    ("phapche", "Phòng Pháp chế"),
    ("cntt", "Phòng Công nghệ thông tin"),
    ("trungtam", "Trung tâm Dịch vụ công"),
)
TITLES = ("Chuyên viên", "Chuyên viên chính", "Cán sự", "Kế toán", "Văn thư", "Kỹ sư",
          "Thanh tra viên", "Nhân viên", "Trưởng phòng", "Phó Trưởng phòng")  # fmt: skip
PREFIX = {"hagiang-2024": "HG", "quangnam-2020": "QN"}  # of the staff ids


def _fold_place(place: str) -> str:
    from reconciler.names import fold

    return fold(place).replace(" ", "")


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([t[0] for t in table], weights=[t[1] for t in table])[0]


def person_name(rng: random.Random) -> dict[str, str]:
    """One person's name fields: `name`, and `family`/`given` when the family name is not first."""
    roll = rng.random()
    female = rng.random() < 0.5
    if roll < 0.03:  # H'Mông: Giàng Seo Lử, Vàng Thị Mỷ, Sùng Mí Chá
        middle = rng.choice(("Thị", "Mí")) if female else rng.choice(("Seo", "Mí", "Văn"))
        return {"name": f"{rng.choice(HMONG_FAMILY)} {middle} {rng.choice(HMONG_GIVEN)}"}
    if roll < 0.05:  # Dao: Triệu Văn Phin, Bàn Thị Mẩy, Triệu Tà Chàn
        middle = "Thị" if female else rng.choice(("Văn", "Tà", "Văn"))
        return {"name": f"{rng.choice(DAO_FAMILY)} {middle} {rng.choice(DAO_GIVEN)}"}
    if roll < 0.06:  # Ê Đê: the given name first, the family (clan) name last
        given = rng.choice(EDE_GIVEN_FEMALE if female else EDE_GIVEN_MALE)
        family = rng.choice(EDE_FAMILY)
        return {"name": f"{given} {family}", "family": family, "given": given}
    family = _pick(rng, FAMILY)
    if rng.random() < 0.08:
        middle = rng.choice(TWO_MIDDLE)
    else:
        middle = _pick(rng, MIDDLE_FEMALE if female else MIDDLE_MALE)
    given = rng.choice(GIVEN_FEMALE if female else GIVEN_MALE)
    return {"name": f"{family} {middle} {given}"}


def _agencies(count: int) -> list[tuple[str, str, str]]:
    """(id, name, abbreviation) of `count` agencies: the provincial departments, then districts."""
    found: list[tuple[str, str, str]] = [(a, n, a) for a, n in AGENCIES[:count]]
    index = 0
    while len(found) < count:
        place = PLACES[index % len(PLACES)]
        round_ = index // len(PLACES)
        abbr = "ubnd" + _fold_place(place) + (str(round_ + 1) if round_ else "")
        name = f"Ủy ban nhân dân huyện {place}" + (f" (khu {round_ + 1})" if round_ else "")
        found.append((abbr, name, abbr))
        index += 1
    return found


def generate(
    n: int,
    *,
    agencies: int | None = None,
    seed: int = 1,
    regulation: str = "hagiang-2024",
    base_dn: str | None = None,
    duplicates: float = 0.02,
) -> Spec:
    """A province of `n` people over `agencies` agencies (default: one per 2,000 people, at
    least 3), each with 3–8 units; deterministic for a given seed. Pure."""
    rng = random.Random(seed)
    count = agencies if agencies is not None else max(3, min(n // 2000, 200))
    domain = get_regulation(regulation).domain
    prefix = PREFIX[regulation]
    spec: Spec = {
        "regulation": regulation,
        "domain": domain,
        "base_dn": base_dn or "dc=" + ",dc=".join(domain.split(".")),
        "quota": "5GB",
        "max_deletes": 10,
        "reserved": ["hotro", "quantri"],
        "agencies": {},
    }
    listed = _agencies(count)
    for agency_id, name, abbr in listed:
        units = [
            {"id": u, "name": un, "abbreviation": u}
            for u, un in UNITS[: rng.randint(3, len(UNITS))]
        ]
        spec["agencies"][agency_id] = {
            "name": name,
            "abbreviation": abbr,
            "manager": "",
            "units": units,
            "staff": [],
        }
    ids = list(spec["agencies"])
    recent: list[str] = []
    for i in range(n):
        agency_id = ids[i % len(ids)] if i < 3 * len(ids) else rng.choice(ids)
        agency = spec["agencies"][agency_id]
        staff = agency["staff"]
        record: dict[str, Any] = {"id": f"{prefix}-{i + 1:06d}"}
        if recent and rng.random() < duplicates:
            record["name"] = rng.choice(recent)  # the same full name again: a collision
        else:
            record.update(person_name(rng))
            if len(recent) < 500:
                recent.append(record["name"])
            else:
                recent[rng.randrange(500)] = record["name"]
        if not staff:
            record["title"], record["rank"] = "Giám đốc", 1
            agency["manager"] = record["id"]
        elif len(staff) <= 2:
            record["title"], record["rank"] = "Phó Giám đốc", 2
        else:
            record["unit"] = rng.choice(agency["units"])["id"]
            record["title"] = rng.choice(TITLES)
        staff.append(record)
    for agency in spec["agencies"].values():
        if not agency["manager"]:
            del agency["manager"]
    return spec


def people(spec: Spec) -> Iterator[tuple[str, dict[str, Any]]]:
    """(agency id, record) of every person."""
    for agency_id, agency in spec["agencies"].items():
        for record in agency["staff"]:
            yield agency_id, record


def mutate(
    spec: Spec,
    *,
    seed: int = 2,
    transfers: int = 0,
    renames: int = 0,
    titles: int = 0,
    removals: int = 0,
    creates: int = 0,
    suspends: int = 0,
) -> Spec:
    """A copy of `spec` after some changes to people without a rank (leaders and managers are
    left alone): transfers to another agency, name changes (the given name), new titles,
    removed records, new people, declared suspensions. Each person changes at most once. Pure."""
    rng = random.Random(seed)
    out = copy.deepcopy(spec)
    candidates = [(a, r) for a, r in people(out) if "rank" not in r]
    wanted = transfers + renames + titles + removals + suspends
    if wanted > len(candidates):
        raise ValueError(f"{wanted} changes asked for, only {len(candidates)} people can change")
    chosen = rng.sample(candidates, wanted)
    ids = list(out["agencies"])
    gone: set[int] = set()
    moves: list[tuple[str, dict[str, Any]]] = []
    at = 0
    for _ in range(transfers):
        agency_id, record = chosen[at]
        at += 1
        target = rng.choice([i for i in ids if i != agency_id])
        gone.add(id(record))
        record.pop("unit", None)
        units = out["agencies"][target]["units"]
        if units:
            record["unit"] = rng.choice(units)["id"]
        moves.append((target, record))
    for _ in range(renames):
        _, record = chosen[at]
        at += 1
        words = record["name"].split()
        given = record.get("given")
        pool = [g for g in GIVEN_MALE + GIVEN_FEMALE if " " not in g and g != words[-1]]
        new = rng.choice(pool)
        if given:  # Ê Đê: the given name comes first
            record["name"] = record["name"].replace(given, f"{given.split()[0]} {new}", 1)
            record["given"] = f"{given.split()[0]} {new}"
        else:
            record["name"] = " ".join([*words[:-1], new])
    for _ in range(titles):
        _, record = chosen[at]
        at += 1
        record["title"] = rng.choice([t for t in TITLES if t != record.get("title")])
    for _ in range(removals):
        _, record = chosen[at]
        at += 1
        gone.add(id(record))
    clause = get_regulation(out["regulation"]).declared_suspend_clause
    for _ in range(suspends):
        _, record = chosen[at]
        at += 1
        record["state"] = "suspended"
        record["suspension"] = {"clause": clause, "note": "nghỉ không lương (benchmark)"}
    for agency in out["agencies"].values():
        agency["staff"] = [r for r in agency["staff"] if id(r) not in gone]
    for target, record in moves:
        out["agencies"][target]["staff"].append(record)
    prefix = PREFIX[out["regulation"]]
    start = sum(len(a["staff"]) for a in spec["agencies"].values()) + 1
    for i in range(creates):
        agency_id = rng.choice(ids)
        agency = out["agencies"][agency_id]
        record = {"id": f"{prefix}-N{seed}-{start + i:06d}", **person_name(rng)}
        if agency["units"]:
            record["unit"] = rng.choice(agency["units"])["id"]
        record["title"] = rng.choice(TITLES)
        agency["staff"].append(record)
    return out


def changes(spec: Spec, fraction: float, *, seed: int = 2) -> Spec:
    """`fraction` of the people changed, in equal parts transfers, renames, title changes and
    removals (1 % of 100,000: 250 of each). Pure."""
    total = sum(len(a["staff"]) for a in spec["agencies"].values())
    each = int(total * fraction / 4)
    return mutate(spec, seed=seed, transfers=each, renames=each, titles=each, removals=each)


# ---------------------------------------------------------------------------------------------
# Text of the files


def _q(value: object) -> str:
    """A YAML scalar: JSON strings are YAML double-quoted scalars; numbers as they are."""
    return json.dumps(value, ensure_ascii=False)


def directory_yaml(spec: Spec) -> str:
    lines = [
        "# Synthetic province made by reconciler.devtools.synth: every person here is invented.",
        f"regulation: {spec['regulation']}",
        f"domain: {spec['domain']}",
        f"base_dn: {_q(spec['base_dn'])}",
        f"quota: {spec['quota']}",
        f"max_deletes: {spec['max_deletes']}",
        f"reserved: [{', '.join(spec['reserved'])}]",
    ]
    return "\n".join(lines) + "\n"


def agency_yaml(agency_id: str, agency: dict[str, Any]) -> str:
    out = [
        "agency:",
        f"  id: {agency_id}",
        f"  name: {_q(agency['name'])}",
        f"  abbreviation: {agency['abbreviation']}",
    ]
    if agency.get("manager"):
        out.append(f"  manager: {_q(agency['manager'])}")
    if agency["units"]:
        out.append("  units:")
        for unit in agency["units"]:
            out.append(
                f"    - {{id: {unit['id']}, name: {_q(unit['name'])}, "
                f"abbreviation: {unit['abbreviation']}}}"
            )
    out.append("staff:" if agency["staff"] else "staff: []")
    for record in agency["staff"]:
        first = True
        for key, value in record.items():
            lead = "  - " if first else "    "
            first = False
            if isinstance(value, dict):
                out.append(f"{lead}{key}:")
                out.extend(f"      {k}: {_q(v)}" for k, v in value.items())
            else:
                out.append(f"{lead}{key}: {_q(value)}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The directory the inventory converges to


def _ldif_line(name: str, value: str) -> str:
    if value.isascii() and value[:1] not in (" ", ":", "<") and value[-1:] != " ":
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode('ascii')}\n"


def _container(dn: str) -> str:
    attr, value = parse_dn(dn)[0]
    lines = [_ldif_line("dn", dn)]
    if attr.lower() == "dc":
        lines += ["objectClass: top\n", "objectClass: dcObject\n", "objectClass: organization\n"]
        lines += [_ldif_line("dc", value), _ldif_line("o", value)]
    elif attr.lower() == "o":
        lines += ["objectClass: top\n", "objectClass: organization\n", _ldif_line("o", value)]
    else:
        lines += ["objectClass: top\n", "objectClass: organizationalUnit\n"]
        lines.append(_ldif_line("ou", value))
    return "".join(lines) + "\n"


def password_hash(seed: int = 1) -> str:
    """A {SSHA} hash of a random throwaway value (nobody can log in with it on purpose)."""
    rng = random.Random(f"password-{seed}")
    secret = rng.randbytes(24)
    salt = rng.randbytes(8)
    digest = hashlib.sha1(secret + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def converged_ldif(
    inventory: Inventory,
    *,
    now: dt.datetime | None = None,
    skip: tuple[str, ...] = (),
    seed: int = 1,
) -> Iterator[str]:
    """LDIF records (for slapadd) of the directory `inventory` converges to after `apply`: the
    plan against an empty directory, each create's attributes as apply writes them, the issued
    password as a fixed {SSHA} hash, the time of apply as `now`. Containers whose DN is in
    `skip` (the server's suffix, already loaded) are left out. Pure."""
    regulation = get_regulation(inventory.settings.regulation)
    moment = now or dt.datetime.now(dt.UTC)
    result = compute(inventory, [], regulation, Context(now=moment))
    skipped = {s.lower() for s in skip}
    base = inventory.settings.base_dn
    for dn in (base, people_dn(base)):
        if dn.lower() not in skipped:
            yield _container(dn)
    password, stamp = password_hash(seed), format_time(moment)
    for op in result.operations:
        if op.action is not Action.CREATE:
            continue
        lines = [_ldif_line("dn", op.new_dn)]
        for change in op.attributes:
            lines.extend(_ldif_line(change.attr, v) for v in resolve(change.after, password, stamp))
        lines.append("\n")
        yield "".join(lines)


def write(spec: Spec, folder: Path, *, extra: dict[str, str] | None = None) -> Path:
    """Write `spec` as an inventory folder (replacing what was there), and each of `extra`'s
    texts to the file of that name (for example the converged LDIF). Returns the folder."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "agencies").mkdir(parents=True)
    (folder / "directory.yaml").write_text(directory_yaml(spec), encoding="utf-8")
    for agency_id, agency in spec["agencies"].items():
        (folder / "agencies" / f"{agency_id}.yaml").write_text(
            agency_yaml(agency_id, agency), encoding="utf-8"
        )
    for path, text in (extra or {}).items():
        Path(path).write_text(text, encoding="utf-8")
    return folder


__all__ = [
    "Spec",
    "changes",
    "converged_ldif",
    "generate",
    "mutate",
    "people",
    "person_name",
    "write",
]
