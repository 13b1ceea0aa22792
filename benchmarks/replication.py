"""How long a read-only replica takes to hold an apply's result (issue 21).

    scripts/bench --replication 10000        (the default: 10,000 creates; 0 skips it)

A synthetic province of N people (the smallest of `--sizes`) is loaded into provider 1 of a
throwaway replicated directory (`reconciler.devtools.replicated`: two providers in multi-provider
mode and a consumer; provider 2 and the consumer fill by replication); then `reconciler apply`
of OPS creates runs against the list of providers, while the consumer's and provider 2's
contextCSNs are read every 0.1 s. Reported: the apply's time, how far behind provider 1 the
consumer and provider 2 were at worst while it ran (the age of the newest change they lacked),
and how long after the apply ended each held all of it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler import csn
from reconciler.devtools import synth
from reconciler.devtools.replicated import Replicated, context_csn
from reconciler.devtools.throwaway import Slapd
from reconciler.inventory import loader as inventory
from reconciler.planning import planfile

PY = sys.executable


@dataclass
class Lag:
    worst: float = 0.0  # seconds: the age of the newest change lacked, at worst during the apply
    caught_up: float = 0.0  # seconds after the apply ended until it held everything


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Watch(threading.Thread):
    """Reads provider 1's and the replicas' contextCSNs every `every` seconds."""

    def __init__(self, source: Slapd, replicas: dict[str, Slapd], every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.source, self.replicas, self.every = source, replicas, every
        self.lags = {name: Lag() for name in replicas}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            want = csn.state(context_csn(self.source))
            now = time.time()
            for name, server in self.replicas.items():
                have = csn.state(context_csn(server))
                age = csn.age(have, want, dt.datetime.fromtimestamp(now, dt.UTC))
                self.lags[name].worst = max(self.lags[name].worst, age)
            self.stop.wait(self.every)


def measure(
    n: int, ops: int, work: Path, seed: int, dbnosync: bool, backend: str, suffix: str, base: str
) -> dict[str, float | int | str]:
    work = work / f"replication-{n}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _log(f"replication: a province of {n:,} people and {ops:,} creates")
    spec = synth.generate(n, seed=seed, base_dn=base)
    folder = synth.write(spec, work / "inv")
    loaded = inventory.load(folder)
    ldif = work / "converged.ldif"
    with open(ldif, "w", encoding="utf-8") as f:
        f.writelines(synth.converged_ldif(loaded, skip=(suffix,), seed=seed))
    del loaded
    creates = synth.write(synth.mutate(spec, seed=13, creates=ops), work / "inv-creates")
    del spec
    servers = Replicated(work / "servers", suffix=suffix, dbnosync=dbnosync)
    started = time.monotonic()
    servers.start(extra_ldif=ldif, timeout=600)
    filled = time.monotonic() - started
    _log(f"replication: provider 2 and the consumer filled in {filled:.1f} s")
    env = {
        "RECONCILER_DIRECTORY": servers.providers_url,
        "RECONCILER_BIND_DN": servers.root_dn,
        "RECONCILER_BIND_PASSWORD": servers.root_pw,
        "RECONCILER_BACKEND": backend,
    }
    try:
        plan_file = work / "creates.json"
        _cli(["plan", str(creates), "--out", str(plan_file)], env)
        planned = len(planfile.load(plan_file).operations)
        watch = Watch(
            servers.provider1, {"consumer": servers.consumer, "provider 2": servers.provider2}
        )
        watch.start()
        start = time.monotonic()
        _cli(
            ["apply", str(plan_file), "--credentials-out", str(work / "passwords.csv"),
             "--audit-log", str(work / "audit.jsonl"), "--actor", "bench"],
            env,
        )  # fmt: skip
        ended = time.monotonic()
        final = csn.state(context_csn(servers.provider1))
        pending = {"consumer": servers.consumer, "provider 2": servers.provider2}
        while pending:
            for name, server in list(pending.items()):
                if csn.holds(csn.state(context_csn(server)), final):
                    watch.lags[name].caught_up = time.monotonic() - ended
                    del pending[name]
            if time.monotonic() - ended > 600:
                raise SystemExit(f"benchmark: {', '.join(pending)} never caught up")
            time.sleep(0.02)
        watch.stop.set()
        watch.join()
    finally:
        servers.stop()
    result: dict[str, float | int | str] = {
        "people": n,
        "operations": planned,
        "backend": backend,
        "initial fill (s)": filled,
        "apply (s)": ended - start,
    }
    for name, lag in watch.lags.items():
        result[f"{name}: worst lag during the apply (s)"] = lag.worst
        result[f"{name}: held it all, after the apply ended (s)"] = lag.caught_up
    shutil.rmtree(work, ignore_errors=True)
    return result


def _cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [PY, "-m", "reconciler", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 2):
        raise SystemExit(f"benchmark: reconciler {args[0]} failed: {done.stderr[-2000:]}")


def table(result: dict[str, float | int | str]) -> str:
    lines = [
        f"\n**Replication** ({result['people']:,} people, an apply of "
        f"{result['operations']:,} creates with {result['backend']} on provider 1)\n",
        "| measure | seconds |",
        "|---|---:|",
    ]
    for key, value in result.items():
        if key.endswith("(s)") and isinstance(value, float):
            lines.append(f"| {key[:-4]} | {value:.2f} |")
    return "\n".join(lines) + "\n"
