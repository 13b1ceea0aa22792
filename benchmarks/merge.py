"""The merger benchmark (issue 19): a synthetic 50,000-mailbox province (source) merged into
another of 50,000 (target), each on its own throwaway slapd, loaded as the reconciler would have
left them: `reconciler merge`, `plan --source-directory` and `apply --source-directory` timed
beside `ldapadd` of the same entries into a third, fresh slapd. Prints a markdown table.

    scripts/bench merge [--size 50000] [--work /tmp/reconciler-bench-merge] [--dbnosync]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.run import ROOT, SUFFIX, Run, log, measure
from reconciler.devtools import synth
from reconciler.devtools.throwaway import Slapd
from reconciler.inventory import loader
from reconciler.model import Action, resolve
from reconciler.planning import planfile
from reconciler.rules import regulations

RECONCILER = str(ROOT / ".venv" / "bin" / "reconciler")
SOURCE_BASE = f"dc=hagiang,{SUFFIX}"
TARGET_BASE = f"dc=tuyenquang,{SUFFIX}"


def target_spec(n: int, seed: int) -> dict[str, Any]:
    """A second province under hagiang-2024's rule, in its own domain with its own ids, and the
    same synthetic agencies (so that the merger's collisions are many)."""
    spec = synth.generate(n, seed=seed, regulation="hagiang-2024", base_dn=TARGET_BASE)
    spec = copy.deepcopy(spec)
    spec["domain"] = "tuyenquang.gov.vn"
    for agency in spec["agencies"].values():
        if agency.get("manager"):
            agency["manager"] = agency["manager"].replace("HG-", "TQ-")
        for record in agency["staff"]:
            record["id"] = record["id"].replace("HG-", "TQ-")
    return spec


def slapd(work: Path, name: str, ldif: Path | None, dbnosync: bool) -> Slapd:
    server = Slapd(work / name, suffix=SUFFIX, dbnosync=dbnosync)
    server.start(extra_ldif=ldif)
    return server


def converged(folder: Path, out: Path) -> Path:
    inventory = loader.load(folder)
    with out.open("w", encoding="utf-8") as f:
        f.writelines(synth.converged_ldif(inventory, skip=(SUFFIX,)))
    return out


def creates_ldif(plan_file: Path, out: Path) -> int:
    """The entries the merger's apply writes, as LDIF for ldapadd (the carried hash a fixed
    {SSHA} value, the time of apply a fixed moment)."""
    plan = planfile.load(plan_file)
    moment = "20250701000000Z"
    count = 0
    with out.open("w", encoding="utf-8") as f:
        for op in plan.operations:
            if op.action is not Action.CREATE:
                continue
            count += 1
            f.write(synth._ldif_line("dn", op.new_dn))
            for change in op.attributes:
                values = resolve(change.after, synth.password_hash(), moment, synth.password_hash())
                f.writelines(synth._ldif_line(change.attr, v) for v in values)
            f.write("\n")
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.merge", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/reconciler-bench-merge"))
    parser.add_argument("--dbnosync", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    n, work = args.size, args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    log(f"generating two provinces of {n:,}")
    source = synth.write(
        synth.generate(n, seed=1, regulation="hagiang-2024", base_dn=SOURCE_BASE), work / "hg"
    )
    target = synth.write(target_spec(n, seed=2), work / "tq")
    agencies = [p.stem for p in sorted((source / "agencies").glob("*.yaml"))]
    (work / "map.yaml").write_text(
        "merged: 2025-07-01\nagencies:\n" + "".join(f"  {a}: {a}\n" for a in agencies),
        encoding="utf-8",
    )
    log("loading both directories (slapadd of the converged entries)")
    servers = [
        slapd(work, "source-slapd", converged(source, work / "hg.ldif"), args.dbnosync),
        slapd(work, "target-slapd", converged(target, work / "tq.ldif"), args.dbnosync),
        slapd(work, "ldapadd-slapd", None, args.dbnosync),
    ]
    src, tgt, bare = servers
    env = {
        "RECONCILER_BIND_DN": tgt.root_dn,
        "RECONCILER_BIND_PASSWORD": tgt.root_pw,
        "RECONCILER_SOURCE_BIND_DN": src.root_dn,
        "RECONCILER_SOURCE_BIND_PASSWORD": src.root_pw,
    }
    rows: list[tuple[str, int, str, Run]] = []
    try:
        log("reconciler merge")
        merged = work / "merged"
        run = measure(
            [RECONCILER, "merge", "--from", str(source), "--into", str(target), "--map",
             str(work / "map.yaml"), "--out", str(merged)],
        )  # fmt: skip
        rows.append(("reconciler merge", n, "staff", run))
        log("reconciler plan --source-directory")
        plan_file = work / "merge.json"
        run = measure(
            [RECONCILER, "plan", str(merged), "--directory", tgt.url, "--source-directory",
             src.url, "--source-base-dn", SOURCE_BASE, "--out", str(plan_file), "--format",
             "json", "--allow-suspends", str(2 * n)],
            env=env,
        )  # fmt: skip
        saved = planfile.load(plan_file)
        creates = saved.count(Action.CREATE)
        rows.append(("reconciler plan --source-directory", creates, "creates planned", run))
        log(f"reconciler apply --source-directory ({creates:,} creates)")
        run = measure(
            [RECONCILER, "apply", str(plan_file), "--directory", tgt.url, "--source-directory",
             src.url, "--credentials-out", str(work / "passwords.csv"), "--audit-log",
             str(work / "audit.jsonl")],
            env=env,
        )  # fmt: skip
        rows.append(("reconciler apply --source-directory", creates, "entries written", run))
        log("ldapadd of the same entries")
        ldif = work / "creates.ldif"
        count = creates_ldif(plan_file, ldif)
        containers = work / "containers.ldif"
        containers.write_text(
            "".join(synth._container(dn) for dn in (TARGET_BASE, f"ou=people,{TARGET_BASE}")),
            encoding="utf-8",
        )
        subprocess.run(
            ["ldapadd", "-x", "-H", bare.url, "-D", bare.root_dn, "-w", bare.root_pw, "-f",
             str(containers)], check=True, capture_output=True,
        )  # fmt: skip
        run = measure(
            ["ldapadd", "-x", "-H", bare.url, "-D", bare.root_dn, "-w", bare.root_pw, "-f",
             str(ldif)],
        )  # fmt: skip
        rows.append(("ldapadd (the same entries)", count, "entries written", run))
        log("the plan after the apply")
        start = time.perf_counter()
        after = subprocess.run(
            [RECONCILER, "plan", str(merged), "--directory", tgt.url, "--detailed-exitcode",
             "--allow-suspends", str(2 * n)],
            env={**os.environ, **env}, capture_output=True, check=False,
        )  # fmt: skip
        empty = after.returncode == 0
        after_seconds = time.perf_counter() - start
    finally:
        for server in servers:
            server.stop()
    load_after = os.getloadavg()
    lines = [
        f"Merger benchmark, {dt.date.today().isoformat()} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{regulations.get('hagiang-2024').id}); slapd "
        f"{'with dbnosync' if args.dbnosync else 'syncing every write'}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        "| step | items | time | rate | peak memory |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, items, unit, run in rows:
        rate = items / run.seconds if run.seconds else 0.0
        lines.append(
            f"| {name} | {items:,} {unit} | {run.seconds:.1f} s | {rate:,.0f}/s | "
            f"{run.peak_mb:.0f} MB |"
        )
    lines.append(
        f"\nThe plan after the apply: {'empty' if empty else 'NOT EMPTY'} "
        f"({after_seconds:.1f} s, {2 * n:,} mailboxes)."
    )
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if not empty:
        sys.exit(1)


if __name__ == "__main__":
    main()
