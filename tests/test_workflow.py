"""The CI definitions, run locally: the shell steps of .github/workflows/reconciler.yml and of
ci/gitlab-ci.yml, taken from the YAML files, against a throwaway slapd and a fake GitHub / GitLab
API on 127.0.0.1, in a git repository with pull requests made of real commits.

Steps that `uses:` an action (checkout, setup-python, upload-artifact) and the steps that install
the tool are not run: the test checks out the commits itself and the tool is the one under test.
Every `${{ }}` value of the workflow must be given by the test's context (`github_env`), so a new
expression in the workflow fails here until the test knows what it means.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from reconciler import __version__
from reconciler.devtools.throwaway import Slapd

from . import scenario
from .helpers import admin_connection

ROOT = scenario.ROOT
WORKFLOW = ROOT / ".github" / "workflows" / "reconciler.yml"
GITLAB = ROOT / "ci" / "gitlab-ci.yml"
BIN = ROOT / ".venv" / "bin"
MARKER = "<!-- reconciler-plan -->"
BOT = "github-actions[bot]"


# --- a fake GitHub and GitLab API ------------------------------------------------------------


@dataclass
class FakeForge:
    """Issue comments / merge-request notes per number, and which pull request a commit merged."""

    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    merged: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha -> pull request
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # number -> issue
    calls: list[str] = field(default_factory=list)
    token: str = "t0ken"
    next_id: int = 100
    url: str = ""

    def comment(self, number: str, author: str, body: str) -> dict[str, Any]:
        self.next_id += 1
        c = {"id": self.next_id, "user": {"login": author}, "author": {"username": author}}
        c["body"] = body
        c["system"] = False
        self.comments.setdefault(number, []).append(c)
        return c

    def plan_comments(self, number: str) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if c["body"].startswith(MARKER)]

    def other_comments(self, number: str) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if not c["body"].startswith(MARKER)]

    def issue(self, title: str, body: str) -> dict[str, Any]:
        number = str(1000 + len(self.issues))
        made = {"number": int(number), "iid": int(number), "title": title, "body": body}
        made |= {"description": body, "user": {"login": BOT}, "author": {"username": BOT}}
        self.issues[number] = made
        return made

    def issue_texts(self) -> list[str]:
        """Every issue's body and comments, oldest first."""
        out = []
        for number, issue in self.issues.items():
            out.append(issue["body"])
            out += [c["body"] for c in self.comments.get(f"issue-{number}", [])]
        return out

    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        self.calls.append(f"{method} {path}")
        if (
            headers.get("Authorization") != f"Bearer {self.token}"
            and headers.get("PRIVATE-TOKEN") != self.token
        ):
            return 401, {"message": "Bad credentials"}
        route = urlsplit(path).path
        listing = re.fullmatch(r"/repos/[^/]+/[^/]+/issues|/api/v4/projects/\d+/issues", route)
        if listing and method == "GET":
            page = int(re.search(r"[?&]page=(\d+)", path).group(1))  # type: ignore[union-attr]
            return 200, list(self.issues.values())[(page - 1) * 100 : page * 100]
        if listing and method == "POST":
            return 201, self.issue(body["title"], body.get("body") or body.get("description"))
        found = re.fullmatch(
            r"/repos/[^/]+/[^/]+/issues/(\d+)/comments|/api/v4/projects/\d+/issues/(\d+)/notes",
            route,
        )
        if found and method == "POST" and (found.group(1) or found.group(2)) in self.issues:
            key = f"issue-{found.group(1) or found.group(2)}"
            return 201, self.comment(key, BOT, body["body"])
        gh = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", route)
        gl = re.fullmatch(r"/api/v4/projects/\d+/merge_requests/(\d+)/notes", route)
        if gh or gl:
            number = (gh or gl).group(1)  # type: ignore[union-attr]
            if method == "GET":
                page = int(re.search(r"[?&]page=(\d+)", path).group(1))  # type: ignore[union-attr]
                return 200, self.comments.get(number, [])[(page - 1) * 100 : page * 100]
            if method == "POST":
                return 201, self.comment(number, BOT, body["body"])
        found = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", route) or re.fullmatch(
            r"/api/v4/projects/\d+/merge_requests/\d+/notes/(\d+)", route
        )
        if found and method in ("PATCH", "PUT"):
            for cs in self.comments.values():
                for c in cs:
                    if str(c["id"]) == found.group(1):
                        if c["user"]["login"] != BOT:
                            return 403, {"message": "not yours"}
                        c["body"] = body["body"]
                        return 200, c
            return 404, {}
        found = re.fullmatch(r"/repos/[^/]+/[^/]+/commits/(\w+)/pulls", route) or re.fullmatch(
            r"/api/v4/projects/\d+/repository/commits/(\w+)/merge_requests", route
        )
        if found and method == "GET":
            pr = self.merged.get(found.group(1))
            return 200, [pr] if pr else []
        return 404, {"message": f"no route {method} {route}"}


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    fake = FakeForge()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, reply = fake.handle(
                self.command, self.path, self.headers, json.loads(raw) if raw else None
            )
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# --- an inventory repository ---------------------------------------------------------------


class Repo:
    def __init__(self, root: Path, inventory: str) -> None:
        self.root = root
        self.inventory = inventory
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", *args],
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def commit(self, spec: dict[str, Any], message: str) -> str:
        target = self.root / self.inventory
        made = scenario.write(spec, self.root.parent / f"{self.root.name}-written")
        shutil.rmtree(target / "agencies", ignore_errors=True)
        shutil.copytree(made, target, dirs_exist_ok=True)
        shutil.rmtree(made)
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def merge(self, branch: str) -> str:
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
        return self.git("rev-parse", "HEAD")


# --- running the steps -----------------------------------------------------------------------


@dataclass
class Run:
    status: int
    output: str


def run_script(script: str, env: dict[str, str], cwd: Path) -> Run:
    out = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(out.returncode, out.stdout + out.stderr)


def base_env(tmp: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"}


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def github_job(
    job: str, ctx: dict[str, str], env: dict[str, str], cwd: Path, stop_at_failure: bool = True
) -> list[tuple[str, Run]]:
    """Run the `run:` steps of one job (not `uses:`, not "Install"), GitHub style: a failed step
    skips the next ones unless they say `if: always()`."""
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    spec = doc["jobs"][job]

    def values(block: dict[str, Any] | None) -> dict[str, str]:
        found = {}
        for key, value in (block or {}).items():
            if "${{" in str(value):
                assert key in ctx, f"the test gives no value for {key} = {value}"
                found[key] = ctx[key]
            else:
                found[key] = str(value)
        return found

    env = {**env, **values(doc.get("env")), **values(spec.get("env"))}
    results: list[tuple[str, Run]] = []
    failed = False
    for step in spec["steps"]:
        if "run" not in step or step["name"].startswith("Install"):
            continue
        if failed and step.get("if") != "always()":
            continue
        result = run_script(step["run"], {**env, **values(step.get("env"))}, cwd)
        results.append((step["name"], result))
        failed = failed or result.status != 0
    return results


def ok(results: list[tuple[str, Run]]) -> str:
    for name, result in results:
        assert result.status == 0, f"{name}:\n{result.output}"
    return "\n".join(r.output for _, r in results)


# --- the GitHub workflow ---------------------------------------------------------------------


@dataclass
class GitHubCI:
    repo: Repo
    forge: FakeForge
    slapd: Slapd
    tmp: Path
    handed: Path
    runs: int = 0

    def context(self, event: str, sha: str, extra: dict[str, str]) -> tuple[dict, dict]:
        self.runs += 1
        temp = self.tmp / f"runner-{self.runs}"
        temp.mkdir()
        summary = temp / "summary.md"
        ctx = {
            "INVENTORY": self.repo.inventory,
            "RECONCILER_SRC": str(ROOT),
            "RECONCILER_REPOSITORY": "province-it/reconciler",
            "RECONCILER_DIRECTORY": self.slapd.url,
            "RECONCILER_BIND_DN": self.slapd.root_dn,
            "RECONCILER_BIND_PASSWORD": self.slapd.root_pw,
            "RECONCILER_WORK": str(temp / "reconciler"),
            "RECONCILER_ARTIFACTS": str(temp / "reconciler-artifacts"),
            "RECONCILER_SECRET_DIR": str(temp / "reconciler-secret"),
            "RECONCILER_CREDENTIALS_HANDOFF": f'cat "$1" >> {self.handed}',
            "GITHUB_TOKEN": self.forge.token,
            "MERGED_SHA": sha,
            "RECONCILER_PLAN_ARGS": "--allow-suspends 1",
            "DISPATCH_DIGEST": "",
            "DISPATCH_NOW": "",
            "RECONCILER_REPORT_DAYS": "",
            "RECONCILER_READ_FROM": "",
            **extra,
        }
        env = {
            **base_env(self.tmp),
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.forge.url,
            "GITHUB_REPOSITORY": "hagiang/directory",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_SHA": sha,
            "GITHUB_ACTOR": "octocat",
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(temp),
        }
        return ctx, env

    def pull_request(self, number: int, head: str, base: str, **extra: str) -> tuple[str, Path]:
        self.repo.git("checkout", "-q", "--detach", head)
        ctx, env = self.context("pull_request", head, {"BASE_REF": base, **extra})
        event = {
            "pull_request": {
                "number": number,
                "head": {"sha": head, "repo": {"full_name": "hagiang/directory"}},
                "base": {"sha": base},
            }
        }
        path = Path(env["RUNNER_TEMP"]) / "event.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        env["GITHUB_EVENT_PATH"] = str(path)
        out = ok(github_job("validate", ctx, env, self.repo.root))
        out += ok(github_job("plan", ctx, env, self.repo.root))
        return out, Path(env["RUNNER_TEMP"])

    def push_main(self, sha: str, **extra: str) -> tuple[list[tuple[str, Run]], Path]:
        self.repo.git("checkout", "-q", "main")
        event = "workflow_dispatch" if extra else "push"
        ctx, env = self.context(event, sha, extra)
        return github_job("apply", ctx, env, self.repo.root), Path(env["RUNNER_TEMP"])

    def merge(self, number: int, branch: str) -> str:
        """Merge the pull request's branch into main, as GitHub's merge button does."""
        merged = self.repo.merge(branch)
        self.forge.merged[merged] = {"number": number, "merge_commit_sha": merged, "merged_at": "x"}
        return merged

    def schedule(self, now: str, report_days: str = "") -> tuple[list[tuple[str, Run]], Path]:
        """The daily job, as the schedule starts it on main, at the clock `now`."""
        self.repo.git("checkout", "-q", "main")
        sha = self.repo.git("rev-parse", "HEAD")
        ctx, env = self.context("schedule", sha, {"RECONCILER_REPORT_DAYS": report_days})
        env["RECONCILER_NOW"] = now
        return github_job("daily", ctx, env, self.repo.root), Path(env["RUNNER_TEMP"])


@pytest.fixture
def github(tmp_path: Path, forge: FakeForge, slapd: Slapd) -> GitHubCI:
    repo = Repo(tmp_path / "repo", "inventory")
    (repo.root / "README.md").write_text("Hà Giang's directory\n", encoding="utf-8")
    repo.git("add", "README.md")
    repo.git("commit", "-qm", "start")
    return GitHubCI(repo, forge, slapd, tmp_path, tmp_path / "handed.csv")


def managed(server: Slapd) -> dict[str, str]:
    with admin_connection(server) as conn:
        conn.search(
            server.suffix, "(objectClass=govMailAccount)", attributes=["employeeNumber", "mail"]
        )
        return {str(e.employeeNumber): str(e.mail) for e in conn.entries}


def spec() -> dict[str, Any]:
    return scenario.hg(base_dn="dc=hagiang,dc=example,dc=gov,dc=vn")


@pytest.mark.slapd
def test_github_pull_request_comment_then_merge_applies_the_reviewed_plan(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    repo = github.repo
    base = repo.git("rev-parse", "HEAD")
    # 1. the adopting pull request: the first inventory
    repo.git("checkout", "-q", "-b", "first")
    head = repo.commit(spec(), "Hà Giang's first inventory")
    out, _ = github.pull_request(1, head, base)
    assert "2 to create" not in out  # markdown, not text
    [comment] = forge.plan_comments("1")
    assert "| 5 | 0 | 0 | 0 | 0 | 0 |" in comment["body"], comment["body"]
    merged = repo.merge("first")
    forge.merged[merged] = {"number": 1, "merge_commit_sha": merged, "merged_at": "now"}
    results, temp = github.push_main(merged)
    log = ok(results)
    assert "Recap:" in log and re.search(r"handed \d+ issued passwords", log)
    assert {"HG-0001", "HG-0101"} <= set(managed(slapd))
    handed = github.handed.read_text(encoding="utf-8").splitlines()
    assert handed[0] == "address,password" and len(handed) >= 3
    for line in handed[1:]:
        assert line.split(",")[1] not in log  # never in the build log
    artifacts = temp / "reconciler-artifacts"
    assert (artifacts / "audit.jsonl").is_file() and (artifacts / "plan.json").is_file()
    assert not (temp / "reconciler-secret").exists()

    # 2. a transfer and a hire; a re-push updates the same comment
    base = repo.git("rev-parse", "main")
    repo.git("checkout", "-q", "-b", "transfer")
    s = spec()
    lan = s["agencies"]["soyte"]["staff"].pop()
    s["agencies"]["sotttt"]["staff"].append(lan)
    head = repo.commit(s, "Trần Thị Lan moves to Sở TTTT")
    forge.comment("2", "a-reviewer", f"{MARKER}\nplanted by hand")
    github.pull_request(2, head, base)
    assert len(forge.plan_comments("2")) == 2  # ours and the planted one, left alone
    ours = [c for c in forge.plan_comments("2") if c["user"]["login"] == BOT]
    assert len(ours) == 1 and "**moved** Trần Thị Lan (`HG-0101`)" in ours[0]["body"]
    s["agencies"]["sotttt"]["staff"].append({"id": "HG-0002", "name": "Lò Văn Hải"})
    repo.git("checkout", "-q", "transfer")
    head = repo.commit(s, "hire Lò Văn Hải")
    github.pull_request(2, head, base)
    ours = [c for c in forge.plan_comments("2") if c["user"]["login"] == BOT]
    assert len(ours) == 1, "a re-push must update the comment, not add one"
    body = ours[0]["body"]
    assert "`vtlan.soyte@hagiang.gov.vn`" not in body or "→" in body
    assert "**Agency files:**" in body and "- `agencies/sotttt.yaml`: 2 operations" in body
    assert "**added** Lò Văn Hải (`HG-0002`)" in body
    assert "Inventory changes since" in body and "(2)" in body
    meta = json.loads(re.search(r"reconciler-plan-meta (\{.*\}) -->", body).group(1))  # type: ignore[union-attr]
    assert meta["commit"] == head and meta["digest"].startswith("sha256:")
    assert body.count(meta["digest"]) == 2  # in the marker and at the bottom

    # 3. someone changes the directory before the merge: the merge job applies nothing
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(employeeNumber=HG-0001)", attributes=["title"])
        conn.modify(conn.entries[0].entry_dn, {"title": [("MODIFY_REPLACE", ["Phó Giám đốc"])]})
    before = managed(slapd)
    merged = repo.merge("transfer")
    forge.merged[merged] = {"number": 2, "merge_commit_sha": merged, "merged_at": "now"}
    results, _ = github.push_main(merged)
    [(_, result), (_, handoff)] = results  # the apply step failed; the handoff always runs
    assert result.status == 1 and handoff.status == 0
    assert "is not what the main branch said before this merge" in result.output
    assert "its plan is not empty (1 operation: a change made by hand" in result.output
    assert managed(slapd) == before
    # the new plan is posted on the pull request, with how to apply it
    [notice] = forge.other_comments("2")[-1:]
    assert (
        notice["body"].startswith("### Not applied")
        and "run the workflow by hand" in notice["body"]
    )
    assert "Phó Giám đốc" in notice["body"]  # the hand change the plan would take back

    # 4. run by hand: plan, then apply that plan by its digest and clock
    results, temp = github.push_main(merged, DISPATCH_DIGEST="", DISPATCH_NOW="")
    log = ok(results)
    found = re.search(r"digest=(sha256:\w+) now=(\S+)", log)
    assert found, log
    assert "To apply exactly this plan" in (temp / "summary.md").read_text(encoding="utf-8")
    results, _ = github.push_main(merged, DISPATCH_DIGEST=found[1], DISPATCH_NOW=found[2])
    ok(results)
    now = managed(slapd)
    assert now["HG-0101"] == "ttlan.sotttt@hagiang.gov.vn" and "HG-0002" in now


@pytest.mark.slapd
def test_github_merge_of_an_unreviewed_inventory_is_refused(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    repo = github.repo
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "first")
    head = repo.commit(spec(), "first inventory")
    github.pull_request(1, head, base)
    # main gets another change to the inventory before the merge
    repo.git("checkout", "-q", "main")
    other = spec()
    other["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Ba"})
    repo.commit(other, "a change straight on main")
    merged = repo.git("rev-parse", "HEAD")  # as if pull request 1 had been merged into it
    forge.merged[merged] = {"number": 1, "merge_commit_sha": merged, "merged_at": "now"}
    results, _ = github.push_main(merged)
    assert results[0][1].status == 1
    assert "are not those its reviewers saw" in results[0][1].output
    assert managed(slapd) == {}
    # no pull request at all: a direct push
    forge.merged.clear()
    results, _ = github.push_main(merged)
    assert results[0][1].status == 1 and "no pull request was merged as" in results[0][1].output


def hire(s: dict[str, Any], agency: str, pid: str, name: str) -> dict[str, Any]:
    s["agencies"][agency]["staff"].append({"id": pid, "name": name})
    return s


def first_inventory(github: GitHubCI) -> None:
    """Pull request 1, the first inventory, merged and applied."""
    repo = github.repo
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "first")
    repo.commit(spec(), "first inventory")
    github.pull_request(1, repo.git("rev-parse", "HEAD"), base)
    ok(github.push_main(github.merge(1, "first"))[0])


def branch(github: GitHubCI, name: str, edit: dict[str, Any], number: int) -> None:
    """A pull request from main's tip: a branch with the inventory `edit`, planned."""
    repo = github.repo
    repo.git("checkout", "-q", "main")
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", name)
    head = repo.commit(edit, name)
    github.pull_request(number, head, base)


@pytest.mark.slapd
def test_github_pull_request_plans_from_the_replica_the_variable_names(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    """RECONCILER_READ_FROM: the pull request's plan (and its merge base's) reads that server,
    says so, and its comment still reaches the pull request; the merge job is not told."""
    repo = github.repo
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "first")
    head = repo.commit(spec(), "Hà Giang's first inventory")
    dead = "ldap://127.0.0.1:9"  # the discard port: nothing answers LDAP there
    with pytest.raises(AssertionError, match=re.escape(dead)):
        github.pull_request(1, head, base, RECONCILER_READ_FROM=dead)
    [failed] = forge.plan_comments("1")
    assert "the plan failed" in failed["body"] and dead in failed["body"], failed["body"]
    out, _ = github.pull_request(1, head, base, RECONCILER_READ_FROM=slapd.url)
    assert f"from {slapd.url} with" in out, out
    [comment] = forge.plan_comments("1")
    assert "| 5 | 0 | 0 | 0 | 0 | 0 |" in comment["body"], comment["body"]
    merge_env = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["apply"]
    assert "RECONCILER_READ_FROM" not in json.dumps(merge_env)


@pytest.mark.slapd
def test_github_pull_requests_merged_one_after_another_are_all_applied(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    """Two pull requests reviewed side by side, merged in a row: each merge is applied with no
    manual step, since each causes exactly what its reviewers saw. A merge whose job never ran
    (cancelled) is caught up by the next one, checked the same way. A merge whose operations
    changed since the review (its address was taken meanwhile) is not applied: its new plan is
    posted on the pull request."""
    first_inventory(github)
    # 1. pull requests 2 and 3, both planned against main as it is now
    branch(github, "hire-hai", hire(spec(), "sotttt", "HG-0002", "Lò Văn Hải"), 2)
    branch(github, "hire-ba", hire(spec(), "soyte", "HG-0102", "Lê Văn Ba"), 3)
    for number in ("2", "3"):
        [comment] = forge.plan_comments(number)
        meta = json.loads(re.search(r"plan-meta (\{.*\}) -->", comment["body"]).group(1))  # type: ignore[union-attr]
        assert meta["caused_count"] == "1" and meta["caused"].startswith("sha256:")
    # merged one after the other: both applied, nobody runs anything by hand
    for number, name in ((2, "hire-hai"), (3, "hire-ba")):
        results, _ = github.push_main(github.merge(number, name))
        log = ok(results)
        assert "Recap: ok=0 changed=1 failed=0 skipped=0" in log, log
    now = managed(slapd)
    assert now["HG-0002"] == "lvhai.sotttt@hagiang.gov.vn"
    assert now["HG-0102"] == "lvba.soyte@hagiang.gov.vn"

    # 2. pull request 4 merged, its job cancelled; pull request 5 merged: both applied by the
    # second job, each checked against its own review
    current = hire(hire(spec(), "sotttt", "HG-0002", "Lò Văn Hải"), "soyte", "HG-0102", "Lê Văn Ba")
    four = json.loads(json.dumps(current))
    four["agencies"]["sotttt"]["staff"][0]["title"] = "Giám đốc Sở"
    branch(github, "title", four, 4)
    branch(
        github,
        "hire-cuc",
        hire(json.loads(json.dumps(current)), "soyte", "HG-0103", "Hà Thị Cúc"),
        5,
    )
    github.merge(4, "title")  # no job runs for it
    results, _ = github.push_main(github.merge(5, "hire-cuc"))
    log = ok(results)
    assert "changed=2" in log, log
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(employeeNumber=HG-0001)", attributes=["title"])
        assert str(conn.entries[0].title) == "Giám đốc Sở"
    assert "HG-0103" in managed(slapd)

    # 3. two pull requests hire namesakes into one agency; the second's address is taken by
    # the time it merges: what it would do is not what was reviewed, so nothing is applied
    current = json.loads(json.dumps(four))
    current = hire(current, "soyte", "HG-0103", "Hà Thị Cúc")
    six = hire(json.loads(json.dumps(current)), "sotttt", "HG-0003", "Đỗ Văn Nam")
    branch(github, "hire-nam", six, 6)
    seven = json.loads(json.dumps(current))  # the record first in the file: no merge conflict
    seven["agencies"]["sotttt"]["staff"].insert(0, {"id": "HG-0004", "name": "Đỗ Văn Nam"})
    branch(github, "hire-nam2", seven, 7)
    ok(github.push_main(github.merge(6, "hire-nam"))[0])
    before = managed(slapd)
    results, _ = github.push_main(github.merge(7, "hire-nam2"))
    failed = results[0][1]
    assert failed.status == 1 and "are not those its reviewers saw" in failed.output
    assert managed(slapd) == before
    [notice] = forge.other_comments("7")
    assert "### Not applied" in notice["body"] and "dvnam1.sotttt@hagiang.gov.vn" in notice["body"]


def time_rule_day(slapd: Slapd, keep_must_change: str) -> str:
    """Every mailbox's password changed at its first login but `keep_must_change`'s; the day
    HG-2024 Đ8.2.d suspends that one (40 days on)."""
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(pwdReset=TRUE)", attributes=["employeeNumber"])
        for entry in conn.entries:
            if str(entry.employeeNumber) != keep_must_change:
                conn.modify(entry.entry_dn, {"pwdReset": [("MODIFY_DELETE", [])]})
    day = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    return day.strftime("%Y-%m-%dT%H:%M:%SZ")


def locked(server: Slapd, key: str) -> bool:
    with admin_connection(server) as conn:
        conn.search(server.suffix, f"(employeeNumber={key})", attributes=["pwdAccountLockedTime"])
        return bool(conn.entries[0].entry_attributes_as_dict.get("pwdAccountLockedTime"))


@pytest.mark.slapd
def test_github_daily_run_applies_the_time_rules_and_reports_the_rest(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    first_inventory(github)
    when = time_rule_day(slapd, "HG-0101")
    # something else differs: a change made by hand, which the daily run must not take back
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(employeeNumber=HG-0001)", attributes=["title"])
        conn.modify(conn.entries[0].entry_dn, {"title": [("MODIFY_REPLACE", ["Quyền Giám đốc"])]})
    local_day = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) + dt.timedelta(hours=7)
    results, temp = github.schedule(when, report_days=f"01-01 {local_day:%m-%d}")
    log = ok(results)
    assert locked(slapd, "HG-0101")  # HG-2024 Đ8.2.d: applied
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(employeeNumber=HG-0001)", attributes=["title"])
        assert str(conn.entries[0].title) == "Quyền Giám đốc"  # reported, not applied
    summary = (temp / "summary.md").read_text(encoding="utf-8")
    assert "**Applied 1 operation of the time rules**" in summary and "HG-2024 Đ8.2.d" in summary
    assert "**Not applied: 1 operation of the plan of the main branch" in summary
    artifacts = temp / "reconciler-artifacts"
    report = artifacts / f"report-{local_day:%Y-%m-%d}.html"
    assert report.is_file() and (artifacts / f"report-{local_day:%Y-%m-%d}.csv").is_file()
    assert "Bị khóa trong kỳ" in report.read_text(encoding="utf-8")
    md = (artifacts / f"report-{local_day:%Y-%m-%d}.md").read_text(encoding="utf-8")
    # the history in the directory counts the first inventory's creations and today's suspension
    assert "| Sở Y tế | 1 | 1 | 2 | 0 | 0 | 1 | 0 | 0 | 0 |" in md, md
    # announced where the team looks: one issue, kept open, a comment per later run
    [issue] = forge.issues.values()
    assert issue["title"] == "Reconciler: daily runs" and "HG-2024 Đ8.2.d" in issue["body"]
    assert "Recap: ok=0 changed=1" in log

    # the next day: nothing due, the hand change still reported; the issue gets a comment
    later = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) + dt.timedelta(days=1)
    results, temp = github.schedule(later.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ok(results)
    summary = (temp / "summary.md").read_text(encoding="utf-8")
    assert "No time rule is due today." in summary and "Not applied: 1 operation" in summary
    assert len(forge.issues) == 1 and len(forge.issue_texts()) == 2
    assert not (temp / "reconciler-artifacts" / f"report-{later:%Y-%m-%d}.html").exists()


@pytest.mark.slapd
def test_github_daily_run_over_the_guard_applies_nothing(
    github: GitHubCI, forge: FakeForge, slapd: Slapd
) -> None:
    """Every mailbox due at once (5 of 5, over the 10 % guard and the --allow-suspends 1 the
    repository allows): nothing is applied, the run fails, and the summary says why."""
    first_inventory(github)
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    results, temp = github.schedule(day)
    assert results[0][1].status == 1
    assert not any(locked(slapd, key) for key in ("HG-0001", "HG-0101"))
    summary = (temp / "summary.md").read_text(encoding="utf-8")
    assert "**The time rules were not applied**" in summary and "--allow-suspends 5" in summary
    assert forge.issues


# --- the GitLab jobs -------------------------------------------------------------------------


def gitlab_job(name: str, env: dict[str, str], cwd: Path) -> tuple[Run, Run | None]:
    doc = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    job = doc[name]
    values = {**doc.get("variables", {}), **job.get("variables", {})}
    # CI/CD variables of the project (env) win over the YAML's, as on GitLab
    full = dict(env)
    for key, value in values.items():
        full.setdefault(key, expand(str(value), full))
    script = "\n".join(job["script"])
    result = run_script(script, full, cwd)
    after = run_script("\n".join(job["after_script"]), full, cwd) if "after_script" in job else None
    return result, after


@pytest.mark.slapd
@pytest.mark.slow
def test_gitlab_merge_request_note_then_apply(
    tmp_path: Path, forge: FakeForge, slapd: Slapd
) -> None:
    repo = Repo(tmp_path / "repo", ".")
    (repo.root / "README.md").write_text("x\n", encoding="utf-8")
    repo.git("add", "README.md")
    repo.git("commit", "-qm", "start")
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "first")
    head = repo.commit(spec(), "first inventory")
    handed = tmp_path / "handed.csv"
    common = {
        **base_env(tmp_path),
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{forge.url}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_DIR": str(repo.root),
        "RECONCILER_GITLAB_TOKEN": forge.token,
        "RECONCILER_COMMENT_AUTHOR": BOT,
        "RECONCILER_SRC": str(ROOT),
        "RECONCILER_DIRECTORY": slapd.url,
        "RECONCILER_WORK": str(tmp_path / "work"),
        "RECONCILER_SECRET_DIR": str(tmp_path / "secret"),
        "RECONCILER_CREDENTIALS_HANDOFF": f'cat "$1" > {handed}',
    }
    mr = {
        **common,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "3",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_COMMIT_SHA": head,
        "RECONCILER_READ_BIND_DN": slapd.root_dn,
        "RECONCILER_READ_BIND_PASSWORD": slapd.root_pw,
    }
    for _ in range(2):
        for job in ("reconciler-validate", "reconciler-plan"):
            result, _after = gitlab_job(job, mr, repo.root)
            assert result.status == 0, result.output
    [note] = forge.plan_comments("3")
    assert "**added** Nguyễn Văn Sơn (`HG-0001`)" in note["body"]
    # a merge request from a fork: the snapshot, and a note that says so
    fork = {**mr, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "77", "CI_MERGE_REQUEST_IID": "4"}
    made = subprocess.run(
        [str(BIN / "reconciler"), "snapshot", "--out", "snapshot/directory.ldif"],
        cwd=repo.root,
        env={**mr, "RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    result, _after = gitlab_job("reconciler-plan", fork, repo.root)
    assert result.status == 0, result.output
    assert (
        "Planned against the LDIF file `snapshot/directory.ldif`"
        in forge.plan_comments("4")[0]["body"]
    )
    shutil.rmtree(repo.root / "snapshot")

    merged = repo.merge("first")
    forge.merged[merged] = {"iid": 3, "merge_commit_sha": merged, "state": "merged"}
    apply_env = {
        **common,
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_SHA": merged,
        "RECONCILER_BIND_DN": slapd.root_dn,
        "RECONCILER_BIND_PASSWORD": slapd.root_pw,
    }
    result, after = gitlab_job("reconciler-apply", apply_env, repo.root)
    assert result.status == 0, result.output
    assert after is not None and after.status == 0, after.output
    assert {"HG-0001", "HG-0101"} <= set(managed(slapd))
    assert len(handed.read_text(encoding="utf-8").splitlines()) >= 3
    assert (repo.root / "reconciler-artifacts" / "audit.jsonl").is_file()
    assert not (tmp_path / "secret").exists()

    # the daily schedule: the time rule applied (one mailbox still on its first password after
    # 40 days), the summary in an issue of the project
    when = time_rule_day(slapd, "HG-0101")
    daily = {
        **apply_env,
        "CI_PIPELINE_SOURCE": "schedule",
        "RECONCILER_NOW": when,
        "RECONCILER_PLAN_ARGS": "--allow-suspends 1",
    }
    result, _after = gitlab_job("reconciler-daily", daily, repo.root)
    assert result.status == 0, result.output
    assert locked(slapd, "HG-0101")
    [issue] = forge.issues.values()
    assert "**Applied 1 operation of the time rules**" in issue["description"]

    # validate on a merge request: every problem on the diff, as a code-quality report
    repo.git("checkout", "-q", "-b", "broken")
    bad = repo.root / "agencies" / "soyte.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("id: HG-0101", "id: HG 0101"))
    result, _after = gitlab_job("reconciler-validate", mr, repo.root)
    assert result.status == 1 and "agencies/soyte.yaml:" in result.output
    [issue] = json.loads((repo.root / "gl-code-quality-report.json").read_text(encoding="utf-8"))
    assert (
        issue["location"]["path"] == "agencies/soyte.yaml"
        and issue["location"]["lines"]["begin"] > 1
    )


# --- the files themselves --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "schema"),
    [(WORKFLOW, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")],
)
def test_ci_files_match_the_schemas(path: Path, schema: str) -> None:
    """check-jsonschema ships SchemaStore's schemas of both; it runs offline."""
    out = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_structure() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = doc[True]  # PyYAML reads the key `on` as True
    assert "pull_request" in on and "pull_request_target" not in on
    assert on["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert on["schedule"][0]["cron"] == "30 17 * * *"  # 00:30 in Vietnam, every day
    assert jobs["daily"]["if"] == "github.event_name == 'schedule'"
    # bind credentials only in the protected jobs
    for name, job in jobs.items():
        text = yaml.safe_dump(job)
        if name in ("apply", "daily"):
            assert job["environment"] == "production"
            assert "secrets.RECONCILER_BIND_PASSWORD" in text
        else:
            assert "secrets.RECONCILER_BIND_" not in text
    # no expression inside a shell script: values reach scripts through env
    for job in jobs.values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", "")
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    for name in ("reconciler-apply", "reconciler-daily"):
        assert gitlab[name]["environment"]["name"] == "production"
        assert gitlab[name]["artifacts"]["when"] == "always"
        assert gitlab[name]["resource_group"] == "reconciler-apply"
    assert gitlab["reconciler-daily"]["rules"][0]["if"].startswith(
        '$CI_PIPELINE_SOURCE == "schedule"'
    )
    reports = gitlab["reconciler-validate"]["artifacts"]["reports"]
    assert reports == {"codequality": "gl-code-quality-report.json"}


def test_pre_commit_manifest_is_valid() -> None:
    out = subprocess.run(
        [str(BIN / "pre-commit"), "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _hook_repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "inv", ".")
    repo.commit(spec(), "inventory")
    return repo


def test_pre_commit_hook_command(tmp_path: Path) -> None:
    """The hook's entry and args, run as pre-commit runs them (pass_filenames: false)."""
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    repo = _hook_repo(tmp_path)
    command = [*hook["entry"].split(), *hook["args"]]
    env = base_env(tmp_path)
    assert subprocess.run(command, cwd=repo.root, env=env, check=False).returncode == 0
    bad = repo.root / "agencies" / "soyte.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("id: HG-0101", "id: HG 0101"))
    out = subprocess.run(
        command, cwd=repo.root, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 1 and "agencies/soyte.yaml:" in out.stderr
    assert re.search(hook["files"], "agencies/soyte.yaml")
    assert re.search(hook["files"], "inventory/directory.yaml")


@pytest.mark.slow
def test_pre_commit_hook_runs_in_a_test_repository(tmp_path: Path) -> None:
    """pre-commit installs the hook from this repository into its own environment (from PyPI
    for the dependencies) and blocks a commit of an invalid inventory."""
    repo = _hook_repo(tmp_path)
    src = tmp_path / "reconciler-src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "*.pyc", "benchmarks", ".mypy_cache", ".pytest_cache", ".ruff_cache"
        ),
    )
    subprocess.run(["git", "init", "-q"], cwd=src, check=True)
    subprocess.run(["git", "add", "-A"], cwd=src, check=True)
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "hook"],
        cwd=src,
        check=True,
    )
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo.root / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {src}\n    rev: {rev}\n    hooks:\n      - id: reconciler-validate\n",
        encoding="utf-8",
    )
    env = {**base_env(tmp_path), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    pre_commit = str(BIN / "pre-commit")
    out = subprocess.run(
        [pre_commit, "run", "--all-files"],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    bad = repo.root / "agencies" / "soyte.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("id: HG-0101", "id: HG 0101"))
    out = subprocess.run(
        [pre_commit, "run", "--files", "agencies/soyte.yaml"],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 1 and "agencies/soyte.yaml:" in out.stdout


# --- the pinned release ----------------------------------------------------------------------

BRANCH_REFS = re.compile(r"ref: *['\"]?main\b|@main\b|\|\| *'main'|VERSION: *['\"]?main\b")


def _install_scripts() -> dict[str, str]:
    """The shell that installs the reconciler, from each CI file."""
    gh = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    scripts = {
        f"github {name}": step["run"]
        for name, job in gh["jobs"].items()
        for step in job["steps"]
        if step.get("name", "").startswith("Install")
    }
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    scripts["gitlab"] = gitlab[".reconciler"]["before_script"][-1]
    return scripts


def test_ci_files_pin_a_release_never_a_branch() -> None:
    for path in (WORKFLOW, GITLAB):
        text = path.read_text(encoding="utf-8")
        assert not BRANCH_REFS.search(text), (path, BRANCH_REFS.search(text))
    gh = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    for version in (gh["env"]["RECONCILER_VERSION"], gitlab["variables"]["RECONCILER_VERSION"]):
        assert re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+|[0-9a-f]{40}", version), version
        # the example files of a release pin that release: its tag is cut from this version
        assert version == f"v{__version__}", version
    scripts = _install_scripts()
    assert len(scripts) == 5  # validate, plan, apply, daily on GitHub; GitLab's before_script
    for script in scripts.values():
        assert "--require-hashes" in script and "requirements/runtime.lock" in script
        assert "--editable" not in script


@pytest.mark.parametrize("version", ["main", "release/2026", "v1", "abc123", "", "v1.2.3;id"])
def test_ci_install_refuses_a_moving_or_malformed_version(tmp_path: Path, version: str) -> None:
    for where, script in _install_scripts().items():
        env = {
            **base_env(tmp_path),
            "RECONCILER_VERSION": version,
            "RECONCILER_SRC": str(tmp_path / "src"),
            "RECONCILER_GIT": "file:///nonexistent",
            "RECONCILER_REPOSITORY": "x/y",
        }
        result = run_script(script, env, tmp_path)
        assert result.status == 1, (where, result.output)
        assert "must be a release tag (vX.Y.Z) or a full commit SHA" in result.output, where
        assert not (tmp_path / "src").exists(), where  # refused before fetching anything


@pytest.mark.slow
def test_ci_install_of_a_pinned_commit_from_its_lock(tmp_path: Path) -> None:
    """GitLab's install step, as CI runs it: a commit of this tree fetched by its SHA into an
    empty folder, its runtime lock installed with hashes into a new virtual environment, then the
    package without a link or an editable install: the schemas ship inside it."""
    src = tmp_path / "published"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache", "tests"
        ),
    )
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q"], cwd=src, check=True)
    subprocess.run(["git", "add", "-A"], cwd=src, check=True)
    subprocess.run([*git, "commit", "-qm", "release"], cwd=src, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(["git", "config", "uploadpack.allowAnySHA1InWant", "true"], cwd=src, check=True)
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    env = {
        **base_env(tmp_path),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "RECONCILER_VERSION": sha,
        "RECONCILER_SRC": str(tmp_path / "src"),
        "RECONCILER_GIT": f"file://{src}",
    }
    result = run_script(_install_scripts()["gitlab"], env, tmp_path)
    assert result.status == 0, result.output
    out = subprocess.run(
        [str(venv / "bin" / "reconciler"), "validate", str(ROOT / "inventory" / "hagiang")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lock = (ROOT / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M):
        if name not in ("setuptools", "pip", "wheel"):
            spelled = re.sub(r"[-_.]", "[-_.]", name)  # pip freeze keeps the project's spelling
            assert re.search(rf"^{spelled}=={re.escape(version)}$", frozen, re.M | re.I), name
