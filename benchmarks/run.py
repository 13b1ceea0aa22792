"""The benchmark: the reconciler's commands beside the server's own speed, on a throwaway slapd.

    scripts/bench [--sizes 10000,100000] [--repeat 3] [--backends python-ldap,ldap3]
                  [--work /tmp/reconciler-bench]
    .venv/bin/python -m benchmarks.run ...           (the same, without scripts/setup first)

For each size N it generates a synthetic province (`reconciler.devtools.synth`), loads the directory
that province converges to into a throwaway slapd with `slapadd -q`, and measures, each command in
its own process, `--repeat` times (the median is shown):

- `reconciler validate` of the inventory, beside iterating libyaml's parse events over the same
  files (`benchmarks/yaml_events.py`) and the start-up of `reconciler --version`;
- `reconciler plan` with no changes, with 1 % and with 10 % of the people changed (transfers,
  renames, title changes and removals in equal parts), beside `ldapsearch -E pr=1000/noprompt`
  of the same entries and attributes, and the bare paged reads of them with ldap3
  (`benchmarks/ldap3_read.py`) and python-ldap (`benchmarks/python_ldap_read.py`);
- `reconciler apply` of 1,000 creates, 1,000 renames, 1,000 updates and 1,000 suspends (each on
  a freshly loaded directory), beside `ldapadd`/`ldapmodify` of LDIF doing the same writes
  (built from the same plan) on a freshly loaded directory; with `--creates C`, also `apply` of
  C creates in one run beside `ldapadd` of them (issue 20: pipelined writes against the
  one-at-a-time C client); `--writes-only` leaves out validate and the reads, `--reads-only`
  the applies;
- on a replicated directory (two providers and a consumer), how long the consumer takes to hold
  the result of an apply of `--replication` creates (`benchmarks/replication.py`).

Every command that opens the directory runs once with each of `--backends` (RECONCILER_BACKEND;
by default python-ldap, when installed, and ldap3); the table's backend column says which.

The directory is loaded with `slapadd -q` (seconds at 100,000); slapd then syncs every write to
disk as a real server does (`--dbnosync` runs it as a throwaway, 3-4x faster for writes, which
makes the per-operation costs that a real server hides under its own sync weigh more).

Peak memory is each command's own peak RSS (ru_maxrss), reported by GNU `/usr/bin/time -f %M`
around it (one process per measured command; started from `time`, not forked from this large
process, whose memory Linux would otherwise count in the child's high-water mark).
Nothing it writes goes into the repository: inventories, LDIF, plans, passwords and the server
live under `--work` (in /tmp).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import replication
from reconciler.attributes import READ
from reconciler.devtools import synth
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import default_backend
from reconciler.inventory import loader as inventory
from reconciler.model import Action, Operation, resolve
from reconciler.planning import planfile

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SUFFIX = "dc=gov,dc=vn"
BASE_DN = "dc=hagiang,dc=gov,dc=vn"
APPLY_OPS = 1000


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Run:
    seconds: float
    peak_mb: float


TIME = Path("/usr/bin/time")  # GNU time (Debian's `time` package; scripts/bench installs it)


def measure(
    args: Sequence[str], *, env: dict[str, str] | None = None, out: Path | None = None
) -> Run:
    """Run one command in its own process; its wall time and its peak memory.

    The wall time is GNU time's %e (10 ms steps) of the command: the memory samples' loop below
    notices the end only at its next sample, which added up to `SAMPLE` seconds to every
    command at random (1,000 modifies take some 0.6 s). The peak is the larger of GNU time's
    %M (the command's ru_maxrss: of its largest process) and the largest sum, sampled every
    `SAMPLE` seconds, of the proportional set sizes of the command and the processes it forked
    (`plan` reads the directory in a child: its memory counts too, and PSS shares the pages
    they share between them instead of counting them twice). GNU time is started from that
    small program: a child forked straight from this (large) process would count this
    process's memory in its own ru_maxrss, since Linux carries the high-water mark across fork
    and exec."""
    stdout = open(out, "wb") if out else subprocess.DEVNULL  # noqa: SIM115
    peak_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-peak-{os.getpid()}"
    try:
        with subprocess.Popen(
            [str(TIME), "-f", "%e %M", "-o", str(peak_file), *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        ) as proc:
            # stderr is read on its own thread: a command that writes much never waits on it
            said: list[bytes] = []
            reader = threading.Thread(target=lambda: said.append(proc.stderr.read()))  # type: ignore[union-attr]
            reader.start()
            tree_kb = 0
            while proc.poll() is None:
                tree_kb = max(tree_kb, _tree_pss_kb(proc.pid, itself=False))
                time.sleep(SAMPLE)
            reader.join()
            stderr = said[0] if said else b""
        elapsed, rss_kb = peak_file.read_text().split()[-2:]
        seconds = float(elapsed)
        peak_kb = max(int(rss_kb), tree_kb)
    finally:
        if out:
            stdout.close()  # type: ignore[union-attr]
        peak_file.unlink(missing_ok=True)
    if proc.returncode not in (0, 2):
        raise SystemExit(
            f"benchmark: {' '.join(args[:3])} … failed ({proc.returncode}): "
            f"{stderr.decode()[-2000:]}"
        )
    return Run(seconds, peak_kb / 1024)


SAMPLE = 0.2  # seconds between two samples of a command's processes' memory (`measure`)


def _tree_pss_kb(pid: int, itself: bool = True) -> int:
    """The proportional set size of process `pid` (unless not `itself`) and of every process
    under it, in KB; 0 for a process gone meanwhile."""
    total = 0
    try:
        if itself:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return total
    return total + sum(_tree_pss_kb(child) for child in children)


@dataclass
class Row:
    command: str
    items: int  # entries read, staff validated, or operations written
    unit: str
    backend: str = "—"  # the LDAP library of the command, or the C client of a baseline
    runs: list[Run] = field(default_factory=list)
    baselines: dict[str, str] = field(default_factory=dict)  # label -> key of a baseline row

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_mb(self) -> float:
        return statistics.median(r.peak_mb for r in self.runs)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(
        self,
        n: int,
        repeat: int,
        work: Path,
        seed: int,
        dbnosync: bool,
        backends: Sequence[str],
        creates: int = 0,
        writes_only: bool = False,
        reads_only: bool = False,
    ) -> None:
        self.creates = creates
        self.writes_only = writes_only
        self.reads_only = reads_only
        self.dbnosync = dbnosync
        self.backends = list(backends)
        self.n = n
        self.repeat = repeat
        self.work = work / str(n)
        self.seed = seed
        self.rows: dict[str, Row] = {}
        self.interpreter_mb = 0.0
        self.entries = 0

    # setup -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        log(f"N={self.n}: generating the province and its variants")
        spec = synth.generate(self.n, seed=self.seed, base_dn=BASE_DN)
        self.base = synth.write(spec, self.work / "inv")
        loaded = inventory.load(self.base)
        self.entries = 2 + len(loaded.people) + sum(1 + len(a.units) for a in loaded.agencies)
        self.ldif = self.work / "converged.ldif"
        with open(self.ldif, "w", encoding="utf-8") as f:
            f.writelines(
                same_identity(synth.converged_ldif(loaded, skip=(SUFFIX,), seed=self.seed))
            )
        del loaded
        self.variants: dict[str, Path] = {
            "1%": synth.write(synth.changes(spec, 0.01, seed=11), self.work / "inv-1"),
            "10%": synth.write(synth.changes(spec, 0.10, seed=12), self.work / "inv-10"),
            "creates": synth.write(
                synth.mutate(spec, seed=13, creates=APPLY_OPS), self.work / "inv-creates"
            ),
            "renames": synth.write(
                synth.mutate(spec, seed=14, renames=APPLY_OPS), self.work / "inv-renames"
            ),
            "updates": synth.write(
                synth.mutate(spec, seed=15, titles=APPLY_OPS), self.work / "inv-updates"
            ),
            "suspends": synth.write(
                synth.mutate(spec, seed=16, suspends=APPLY_OPS), self.work / "inv-suspends"
            ),
        }
        if self.creates:
            self.variants["many creates"] = synth.write(
                synth.mutate(spec, seed=17, creates=self.creates), self.work / "inv-many"
            )
        del spec
        log(f"N={self.n}: starting slapd with {self.entries:,} entries (slapadd -q)")
        self.slapd = Slapd(self.work / "slapd", suffix=SUFFIX, dbnosync=self.dbnosync)
        self.slapd.start(extra_ldif=self.ldif)
        self.pwfile = str(self.slapd.workdir / "admin.pw")
        self.env = {
            "RECONCILER_DIRECTORY": self.slapd.url,
            "RECONCILER_BIND_DN": self.slapd.root_dn,
            "RECONCILER_BIND_PASSWORD": self.slapd.root_pw,
        }

    def reload(self) -> None:
        self.slapd.reset(extra_ldif=self.ldif)
        # slapadd -q leaves the database in the page cache: its writeback is the load's cost, not
        # that of the first write measured after it (slapd's first sync would wait for it)
        os.sync()

    # commands ----------------------------------------------------------------------------------

    def reconciler(self, *args: str) -> list[str]:
        return [PY, "-m", "reconciler", *args]

    def ldap(self, tool: str, *args: str) -> list[str]:
        return [
            tool,
            "-x",
            "-H",
            self.slapd.url,
            "-D",
            self.slapd.root_dn,
            "-y",
            self.pwfile,
            *args,
        ]

    def plan_args(self, folder: Path, out: Path) -> list[str]:
        big = str(self.n)
        return self.reconciler(
            "plan",
            str(folder),
            "--out",
            str(out),
            "--allow-deletes",
            big,
            "--allow-suspends",
            big,
        )

    def row(
        self, key: str, command: str, items: int, unit: str, backend: str = "—", **baselines: str
    ) -> Row:
        return self.rows.setdefault(
            key, Row(command, items, unit, backend=backend, baselines=baselines)
        )

    def env_for(self, backend: str) -> dict[str, str]:
        return {**self.env, "RECONCILER_BACKEND": backend}

    def run(self) -> None:
        self.prepare()
        try:
            self.interpreter_mb = statistics.median(
                measure([PY, "-c", "import reconciler.cli, reconciler.planning.plan"]).peak_mb
                for _ in range(3)
            )
            for i in range(self.repeat):
                if not self.writes_only:
                    log(f"N={self.n}: round {i + 1} of {self.repeat}: reads")
                    self.reads()
                if not self.reads_only:
                    log(f"N={self.n}: round {i + 1} of {self.repeat}: writes")
                    self.writes()
        finally:
            self.slapd.stop()

    def reads(self) -> None:
        n = self.entries
        self.row("startup", "reconciler --version (start-up)", 1, "runs").runs.append(
            measure(self.reconciler("--version"))
        )
        self.row("yaml", "yaml.parse events, CLoader (baseline)", self.n, "staff").runs.append(
            measure([PY, "-m", "benchmarks.yaml_events", str(self.base)])
        )
        self.row("validate", "validate", self.n, "staff").runs.append(
            measure(self.reconciler("validate", str(self.base)))
        )
        self.row(
            "ldapsearch", "ldapsearch -E pr=1000 (baseline)", n, "entries", "libldap"
        ).runs.append(
            measure(self.ldap("ldapsearch", "-LLL", "-b", BASE_DN, "-E", "pr=1000/noprompt", *READ))
        )
        bare = {"ldap3": "benchmarks.ldap3_read", "python-ldap": "benchmarks.python_ldap_read"}
        for backend in self.backends:
            args = [self.slapd.url, self.slapd.root_dn, self.pwfile, BASE_DN]
            self.row(
                f"read@{backend}", "bare paged read (baseline)", n, "entries", backend
            ).runs.append(measure([PY, "-m", bare[backend], *args]))
        for backend in self.backends:
            for key, label, folder in (
                ("plan0", "plan, no changes", self.base),
                ("plan1", "plan, 1 % changed", self.variants["1%"]),
                ("plan10", "plan, 10 % changed", self.variants["10%"]),
            ):
                reads = {f"{b} read": f"read@{b}" for b in self.backends}
                row = self.row(
                    f"{key}@{backend}",
                    label,
                    n,
                    "entries",
                    backend,
                    ldapsearch="ldapsearch",
                    **reads,
                )
                out = self.work / f"{key}.json"
                row.runs.append(measure(self.plan_args(folder, out), env=self.env_for(backend)))

    def writes(self) -> None:
        kinds = {k: APPLY_OPS for k in ("creates", "renames", "updates", "suspends")}
        if self.creates:
            kinds["many creates"] = self.creates
        for kind, expected in kinds.items():
            slug = kind.replace(" ", "-")
            self.reload()
            plan_file = self.work / f"apply-{slug}.json"
            measure(self.plan_args(self.variants[kind], plan_file), env=self.env)
            saved = planfile.load(plan_file)
            ops = [op for op in saved.operations]
            if len(ops) != expected:
                raise SystemExit(f"benchmark: the {kind} plan has {len(ops)} operations")
            ldif = self.work / f"apply-{slug}.ldif"
            ldif.write_text("".join(equivalent_ldif(op) for op in ops), encoding="utf-8")
            tool = "ldapmodify" if kind in ("renames", "updates", "suspends") else "ldapadd"
            base_key = f"{tool}-{slug}"
            for backend in self.backends:
                self.reload()
                run = self.work / f"run-{slug}"
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir()
                row = self.row(
                    f"apply-{kind}@{backend}",
                    f"apply, {len(ops):,} {kind.split()[-1]}",
                    len(ops),
                    "ops",
                    backend,
                    **{tool: base_key},
                )
                apply_args = [
                    "apply", str(plan_file), "--credentials-out", str(run / "passwords.csv"),
                    "--audit-log", str(run / "audit.jsonl"), "--actor", "bench",
                ]  # fmt: skip
                row.runs.append(measure(self.reconciler(*apply_args), env=self.env_for(backend)))
            self.reload()
            self.row(
                base_key, f"{tool} of the same {kind} (baseline)", len(ops), "ops", "libldap"
            ).runs.append(measure(self.ldap(tool, "-f", str(ldif))))

    # results -----------------------------------------------------------------------------------

    def results(self) -> dict[str, dict[str, float | str | int]]:
        out: dict[str, dict[str, float | str | int]] = {}
        for key, row in self.rows.items():
            item: dict[str, float | str | int] = {
                "command": row.command,
                "backend": row.backend,
                "items": row.items,
                "unit": row.unit,
                "seconds": row.seconds,
                "rate": row.rate,
                "peak_mb": row.peak_mb,
                "runs": len(row.runs),
            }
            for label, base in row.baselines.items():
                other = self.rows[base]
                if row.unit == "ops":  # throughput relative to the baseline's
                    item[f"vs {label}"] = row.rate / other.rate
                else:  # time relative to the baseline's
                    item[f"vs {label}"] = row.seconds / other.seconds
            if key == "validate" and {"yaml", "startup"} <= self.rows.keys():
                # issue 20's measure: validate less the start-up, against libyaml's events
                startup = self.rows["startup"].seconds
                item["vs yaml.parse, less start-up"] = (row.seconds - startup) / self.rows[
                    "yaml"
                ].seconds
            if key.startswith("plan"):  # peak memory beyond the interpreter, per mailbox
                item["KB/mailbox"] = (row.peak_mb - self.interpreter_mb) * 1024 / self.n
            out[key] = item
        return out


#: The base entry's entryUUID in every load: slapadd would give it a new one each time, and apply
#: refuses a plan made for another directory (issue 15), which a reload would otherwise be.
BASE_UUID = "5eb1c0de-0000-4000-8000-000000000020"


def same_identity(entries: Iterator[str]) -> Iterator[str]:
    """The LDIF entries, the base entry with `BASE_UUID`."""
    head = f"dn: {BASE_DN}\n"
    for text in entries:
        yield (
            text.replace(head, f"{head}entryUUID: {BASE_UUID}\n", 1)
            if text.startswith(head)
            else text
        )


def equivalent_ldif(op: Operation) -> str:
    """The LDIF `ldapadd`/`ldapmodify` runs to make the same change as `op`."""
    line = synth._ldif_line
    password, stamp = "Bench-Temp-Password-1", "20260101000000Z"
    if op.action is Action.CREATE:
        text = line("dn", op.new_dn) + "changetype: add\n"
        for change in op.attributes:
            text += "".join(line(change.attr, v) for v in resolve(change.after, password, stamp))
        return text + "\n"
    text = ""
    dn = op.dn
    changes = list(op.changes)
    if op.action is Action.RENAME:
        rdn = op.new_dn.split(",", 1)[0]
        text += line("dn", dn) + "changetype: modrdn\n" + line("newrdn", rdn)
        text += "deleteoldrdn: 1\n\n"
        dn = op.new_dn
        changes = [c for c in changes if c.attr != "uid"]
    text += line("dn", dn) + "changetype: modify\n"
    parts = []
    for change in changes:
        if change.after:
            values = resolve(change.after, password, stamp)
            body = "".join(line(change.attr, v) for v in values)
            parts.append(f"replace: {change.attr}\n{body}-\n")
        else:
            parts.append(f"delete: {change.attr}\n-\n")
    return text + "".join(parts) + "\n"


def table(
    sizes: dict[int, dict[str, dict[str, float | str | int]]], interp: dict[int, float]
) -> str:
    lines = []
    for n, rows in sizes.items():
        lines.append(f"\n**N = {n:,}** (interpreter alone: {interp[n]:.0f} MB)\n")
        lines.append("| command | backend | time (s) | rate | peak MB | vs baseline |")
        lines.append("|---|---|---:|---:|---:|---|")
        for row in rows.values():
            ratios = ", ".join(
                f"{k[3:]} {v:.2f}×"
                for k, v in row.items()
                if k.startswith("vs ") and isinstance(v, float)
            )
            if "KB/mailbox" in row:
                ratios += f"; {float(row['KB/mailbox']):.2f} KB/mailbox beyond the interpreter"
            lines.append(
                f"| {row['command']} | {row['backend']} | {row['seconds']:.2f} "
                f"| {row['rate']:,.0f} {row['unit']}/s | {row['peak_mb']:.0f} | {ratios} |"
            )
    ns = sorted(sizes)
    if len(ns) >= 2:
        small, big = ns[0], ns[-1]
        lines.append(
            f"\n**Growth from N = {small:,} to N = {big:,}** (time ratio; ×{big / small:g} "
            "the data)\n"
        )
        lines.append("| command | backend | growth |")
        lines.append("|---|---|---:|")
        for key, row in sizes[big].items():
            if key in sizes[small]:
                growth = float(row["seconds"]) / float(sizes[small][key]["seconds"])
                lines.append(f"| {row['command']} | {row['backend']} | {growth:.1f}× |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/reconciler-bench"))
    parser.add_argument(
        "--backends",
        default=",".join(dict.fromkeys((default_backend(), "ldap3"))),
        help="the LDAP libraries to run the commands with (default: python-ldap when installed, "
        "and ldap3)",
    )
    parser.add_argument(
        "--replication",
        type=int,
        default=10_000,
        metavar="OPS",
        help="also time how long a replica takes to hold an apply of OPS creates, on a "
        "replicated directory of the smallest size (0: skip)",
    )
    parser.add_argument(
        "--replication-only", action="store_true", help="only the replication measure"
    )
    parser.add_argument(
        "--creates",
        type=int,
        default=0,
        metavar="C",
        help="also time an apply of C creates in one run, beside ldapadd of them",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--writes-only", action="store_true", help="only the applies (no validate, no reads)"
    )
    only.add_argument(
        "--reads-only", action="store_true", help="only validate and the reads (no applies)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--dbnosync",
        action="store_true",
        help="run slapd with dbnosync (writes 3-4x faster than a real server, which syncs)",
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    # the commands measured start as an installed tool does, from bytecode: where the environment
    # says not to write it (PYTHONDONTWRITEBYTECODE), every run would compile what changed since
    # the last one that could (a tenth of a second and more, counted as the command's own)
    subprocess.run([PY, "-m", "compileall", "-q", "reconciler", "benchmarks"], check=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: dict[int, dict[str, dict[str, float | str | int]]] = {}
    interp: dict[int, float] = {}
    for n in [] if args.replication_only else sizes:
        backends = [b for b in args.backends.split(",") if b]
        bench = Bench(
            n,
            args.repeat,
            args.work,
            args.seed,
            args.dbnosync,
            backends,
            creates=args.creates,
            writes_only=args.writes_only,
            reads_only=args.reads_only,
        )
        bench.run()
        results[n] = bench.results()
        interp[n] = bench.interpreter_mb
        (args.work / f"results-{n}.json").write_text(
            json.dumps({"n": n, "interpreter_mb": interp[n], "rows": results[n]}, indent=1)
        )
        if not args.keep:
            shutil.rmtree(bench.work, ignore_errors=True)
    replicated = ""
    if args.replication:
        backend = next(b for b in args.backends.split(",") if b)
        measured = replication.measure(
            min(sizes), args.replication, args.work, args.seed, args.dbnosync, backend,
            SUFFIX, BASE_DN,
        )  # fmt: skip
        (args.work / "results-replication.json").write_text(json.dumps(measured, indent=1))
        replicated = replication.table(measured)
    median = "" if args.replication_only else f", median of {args.repeat} runs"
    header = (
        f"Measured {dt.date.today().isoformat()} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}){median}; slapd "
        f"{'with dbnosync' if args.dbnosync else 'syncing every write'}.\n"
    )
    print(header + table(results, interp) + replicated)


if __name__ == "__main__":
    main()
