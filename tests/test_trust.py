"""Trust nothing that arrives (issue 15): an agency file that reaches for an entry it does not own,
an entry outside the tool's management, a plan file edited and re-sealed, a second apply, an
address taken between plan and apply, a hand edit during an interrupted rename, existing damage.
Every case on a real throwaway slapd (and the LDIF file directory where it behaves the same)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.attributes import READ
from reconciler.directory import Directory
from reconciler.errors import InventoryError
from reconciler.model import Action, Plan
from reconciler.planning import planfile, render

from . import scenario
from .scenario import BASE_HG

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


def converged(folder: Path, directory: Directory, tmp: Path) -> Plan:
    first = scenario.plan(folder, directory)
    recap = scenario.apply(first, directory, tmp)
    assert recap.failed == 0, recap.messages
    again = scenario.plan(folder, directory)
    assert again.empty, [(op.action.value, op.id) for op in again.operations]
    return first


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
