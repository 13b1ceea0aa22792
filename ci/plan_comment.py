#!/usr/bin/env python3
"""The plan's one comment on a pull request (GitHub) or merge request (GitLab); stdlib only.

    plan_comment.py post --markdown plan.md [--plan plan.json] [--caused caused.json]
        create the comment marked <!-- reconciler-plan -->, or update it when it exists (a
        re-push updates the same comment); the reviewed plan's digest, clock, commit, directory
        and the digest of the operations the pull request itself causes are kept in a second
        hidden marker for the merge job.
    plan_comment.py reviewed --commit SHA --out reviewed.json
        find the pull request merged as SHA and write the hidden marker's data of its comment.
    plan_comment.py caused --head head.json [--base base.json] --out caused.json
        the operations of the head's plan that the base's plan (the same directory, the same
        clock) does not hold: what a pull request's changes cause, with their digest.
    plan_comment.py notify --pull N --markdown text.md
        add a comment to pull request N (the merge job's word when it applied nothing).
    plan_comment.py announce --title TITLE --markdown text.md
        add the text to the open issue marked <!-- reconciler-daily --> (created when there is
        none): the daily scheduled run's summary, where the team looks.
    plan_comment.py field FILE KEY
        print one value of a JSON file (for shell scripts without jq).

The platform is GitHub when GITHUB_ACTIONS=true (GITHUB_API_URL, GITHUB_REPOSITORY,
GITHUB_EVENT_PATH, GITHUB_TOKEN), GitLab when GITLAB_CI=true (CI_API_V4_URL, CI_PROJECT_ID,
CI_MERGE_REQUEST_IID, RECONCILER_GITLAB_TOKEN: a project access token with the `api` scope, since
CI_JOB_TOKEN cannot write notes). Only comments by RECONCILER_COMMENT_AUTHOR (GitHub default:
github-actions[bot]) are taken as the plan's, so that nobody plants a marker in their own comment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

MARKER = "<!-- reconciler-plan -->"
DAILY = "<!-- reconciler-daily -->"
META = re.compile(r"<!-- reconciler-plan-meta (\{.*\}) -->")
#: GitHub refuses comments over 65,536 characters; GitLab notes over 1,000,000.
LIMIT = 65_000


class Fail(Exception):
    status = 1


class NoPull(Fail):
    """No pull request was merged as the commit (exit status 3)."""

    status = 3


class NoPlan(Fail):
    """The pull request has no plan comment with a digest (exit status 4)."""

    status = 4


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name) or default
    if value is None:
        raise Fail(f"{name} is not set")
    return value


class Api:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base = base.rstrip("/")
        self.headers = headers

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=body,
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise HTTPFail(error.code, f"{method} {path}: HTTP {error.code} {detail}") from None
        except urllib.error.URLError as error:
            raise Fail(f"{method} {self.base}{path}: {error.reason}") from None
        return json.loads(raw) if raw else None

    def pages(self, path: str) -> list[Any]:
        found: list[Any] = []
        page = 1
        sep = "&" if "?" in path else "?"
        while True:
            items = self.call("GET", f"{path}{sep}per_page=100&page={page}")
            found += items
            if len(items) < 100:
                return found
            page += 1


class HTTPFail(Fail):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Platform:
    """Comments of one pull request, and the pull request merged as a commit."""

    author: str

    def comments(self) -> list[tuple[str, str, str]]:  # (id, author, body)
        raise NotImplementedError

    def create(self, body: str) -> str:
        raise NotImplementedError

    def update(self, comment_id: str, body: str) -> None:
        raise NotImplementedError

    def merged_as(self, sha: str) -> list[str]:
        raise NotImplementedError

    def use(self, number: str) -> None:
        raise NotImplementedError

    def issues(self) -> list[tuple[str, str, str]]:  # open issues: (number, author, body)
        raise NotImplementedError

    def open_issue(self, title: str, body: str) -> str:
        raise NotImplementedError

    def comment_issue(self, number: str, body: str) -> None:
        raise NotImplementedError


class GitHub(Platform):
    def __init__(self) -> None:
        self.api = Api(
            env("GITHUB_API_URL", "https://api.github.com"),
            {
                "Authorization": f"Bearer {env('GITHUB_TOKEN')}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "reconciler-ci",
            },
        )
        self.repo = env("GITHUB_REPOSITORY")
        self.author = os.environ.get("RECONCILER_COMMENT_AUTHOR") or "github-actions[bot]"
        self.number = ""
        event = os.environ.get("GITHUB_EVENT_PATH")
        if event and Path(event).is_file():
            data = json.loads(Path(event).read_text(encoding="utf-8"))
            pr = data.get("pull_request") or {}
            self.number = str(pr.get("number", ""))

    def use(self, number: str) -> None:
        self.number = number

    def comments(self) -> list[tuple[str, str, str]]:
        items = self.api.pages(f"/repos/{self.repo}/issues/{self.number}/comments")
        return [(str(c["id"]), (c.get("user") or {}).get("login", ""), c["body"]) for c in items]

    def create(self, body: str) -> str:
        made = self.api.call(
            "POST", f"/repos/{self.repo}/issues/{self.number}/comments", {"body": body}
        )
        return str(made["id"])

    def update(self, comment_id: str, body: str) -> None:
        self.api.call("PATCH", f"/repos/{self.repo}/issues/comments/{comment_id}", {"body": body})

    def merged_as(self, sha: str) -> list[str]:
        pulls = self.api.call("GET", f"/repos/{self.repo}/commits/{sha}/pulls")
        pulls.sort(key=lambda p: (p.get("merge_commit_sha") != sha, not p.get("merged_at")))
        return [str(p["number"]) for p in pulls]

    def issues(self) -> list[tuple[str, str, str]]:
        items = self.api.pages(f"/repos/{self.repo}/issues?state=open")
        return [
            (str(i["number"]), (i.get("user") or {}).get("login", ""), i.get("body") or "")
            for i in items
            if "pull_request" not in i
        ]

    def open_issue(self, title: str, body: str) -> str:
        made = self.api.call("POST", f"/repos/{self.repo}/issues", {"title": title, "body": body})
        return str(made["number"])

    def comment_issue(self, number: str, body: str) -> None:
        self.api.call("POST", f"/repos/{self.repo}/issues/{number}/comments", {"body": body})


class GitLab(Platform):
    def __init__(self) -> None:
        self.api = Api(
            env("CI_API_V4_URL"),
            {"PRIVATE-TOKEN": env("RECONCILER_GITLAB_TOKEN"), "User-Agent": "reconciler-ci"},
        )
        self.project = urllib.parse.quote(env("CI_PROJECT_ID"), safe="")
        self.number = os.environ.get("CI_MERGE_REQUEST_IID", "")
        self.author = os.environ.get("RECONCILER_COMMENT_AUTHOR", "")

    def use(self, number: str) -> None:
        self.number = number

    def _notes(self) -> str:
        return f"/projects/{self.project}/merge_requests/{self.number}/notes"

    def comments(self) -> list[tuple[str, str, str]]:
        items = self.api.pages(self._notes() + "?sort=asc")
        return [
            (str(n["id"]), (n.get("author") or {}).get("username", ""), n["body"])
            for n in items
            if not n.get("system")
        ]

    def create(self, body: str) -> str:
        return str(self.api.call("POST", self._notes(), {"body": body})["id"])

    def update(self, comment_id: str, body: str) -> None:
        self.api.call("PUT", f"{self._notes()}/{comment_id}", {"body": body})

    def merged_as(self, sha: str) -> list[str]:
        mrs = self.api.call(
            "GET", f"/projects/{self.project}/repository/commits/{sha}/merge_requests"
        )
        mrs.sort(
            key=lambda m: (
                sha not in (m.get("merge_commit_sha"), m.get("squash_commit_sha")),
                m.get("state") != "merged",
            )
        )
        return [str(m["iid"]) for m in mrs]

    def issues(self) -> list[tuple[str, str, str]]:
        items = self.api.pages(f"/projects/{self.project}/issues?state=opened")
        return [
            (str(i["iid"]), (i.get("author") or {}).get("username", ""), i.get("description") or "")
            for i in items
        ]

    def open_issue(self, title: str, body: str) -> str:
        made = self.api.call(
            "POST", f"/projects/{self.project}/issues", {"title": title, "description": body}
        )
        return str(made["iid"])

    def comment_issue(self, number: str, body: str) -> None:
        self.api.call("POST", f"/projects/{self.project}/issues/{number}/notes", {"body": body})


def platform() -> Platform:
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return GitHub()
    if os.environ.get("GITLAB_CI") == "true":
        return GitLab()
    raise Fail("neither GITHUB_ACTIONS=true nor GITLAB_CI=true: not in a known CI")


def ours(p: Platform) -> list[tuple[str, str]]:
    """(id, body) of the plan comments: with the marker, by the expected author."""
    return [
        (cid, body)
        for cid, author, body in p.comments()
        if body.lstrip().startswith(MARKER) and (not p.author or author == p.author)
    ]


def meta_of(plan_file: Path, caused_file: Path | None = None) -> dict[str, str]:
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    meta = {
        "digest": plan["digest"],
        "now": plan["now"],
        "commit": plan["inventory"]["commit"],
        "inventory": plan["inventory"]["digest"],
        "directory": plan["directory"]["url"],
    }
    if caused_file is not None:
        caused = json.loads(caused_file.read_text(encoding="utf-8"))
        meta["caused"] = caused["digest"]
        meta["caused_count"] = str(caused["count"])
    return meta


def _canonical(op: dict[str, Any]) -> str:
    return json.dumps(op, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def caused_operations(head: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    """The operations of `head` (a plan file's data) that `base` does not hold, each as its
    canonical JSON, sorted: what the change from base to head causes in the same directory at
    the same clock. Without a base (no inventory there), every operation of the head."""
    remaining: dict[str, int] = {}
    for op in (base or {}).get("operations", []):
        key = _canonical(op)
        remaining[key] = remaining.get(key, 0) + 1
    out = []
    for op in head.get("operations", []):
        key = _canonical(op)
        if remaining.get(key):
            remaining[key] -= 1
        else:
            out.append(key)
    return sorted(out)


def caused_digest(operations: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(operations).encode()).hexdigest()


def caused(args: argparse.Namespace) -> int:
    head = json.loads(Path(args.head).read_text(encoding="utf-8"))
    base = json.loads(Path(args.base).read_text(encoding="utf-8")) if args.base else None
    ops = caused_operations(head, base)
    data = {"digest": caused_digest(ops), "count": len(ops), "total": len(head["operations"])}
    Path(args.out).write_text(json.dumps(data), encoding="utf-8")
    print(f"{len(ops)} of {len(head['operations'])} operations caused: {data['digest']}")
    return 0


def notify(args: argparse.Namespace) -> int:
    p = platform()
    p.use(args.pull)
    p.create(Path(args.markdown).read_text(encoding="utf-8")[:LIMIT])
    print(f"commented on pull request {args.pull}")
    return 0


def announce(args: argparse.Namespace) -> int:
    """The daily run's summary: a comment on the open issue it keeps, or a new issue."""
    p = platform()
    text = Path(args.markdown).read_text(encoding="utf-8")[: LIMIT - 100]
    author = p.author or ""
    for number, by, body in p.issues():
        if DAILY in body and (not author or by == author):
            p.comment_issue(number, text)
            print(f"added the summary to issue {number}")
            return 0
    body = f"{DAILY}\nThe reconciler's daily run writes its summaries here (time rules applied, "
    body += "differences not applied, reports). Close it to start a new one.\n\n" + text
    number = p.open_issue(args.title, body)
    print(f"opened issue {number}")
    return 0


def compose(markdown: str, meta: dict[str, str] | None) -> str:
    lines = [MARKER]
    if meta is not None:
        # an HTML comment cannot hold "--": escape it inside the JSON strings
        text = json.dumps(meta, ensure_ascii=False, sort_keys=True).replace("--", "-\\u002d")
        lines.append(f"<!-- reconciler-plan-meta {text} -->")
    body = "\n".join(lines) + "\n" + markdown
    if len(body) > LIMIT:
        body = body[: LIMIT - 200] + "\n\n_… cut: the comment was too long; see the job's log._\n"
    return body


def post(args: argparse.Namespace) -> int:
    markdown = Path(args.markdown).read_text(encoding="utf-8")
    caused_file = Path(args.caused) if args.caused else None
    meta = meta_of(Path(args.plan), caused_file) if args.plan else None
    body = compose(markdown, meta)
    p = platform()
    if not getattr(p, "number", ""):
        raise Fail("no pull request number in this CI context (not a pull-request event?)")
    existing = ours(p)
    try:
        if existing:
            cid = existing[0][0]
            p.update(cid, body)
            print(f"updated the plan comment {cid}")
        else:
            cid = p.create(body)
            print(f"created the plan comment {cid}")
    except HTTPFail as error:
        if error.code not in (401, 403) or not isinstance(p, GitHub):
            raise
        # A pull request from a fork runs with a read-only token: it cannot comment.
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(markdown)
        print(
            "::warning::the token may not comment on this pull request (a fork's pull request "
            "runs with a read-only token); the plan is in the job summary instead"
        )
    return 0


def reviewed(args: argparse.Namespace) -> int:
    p = platform()
    numbers = p.merged_as(args.commit)
    if not numbers:
        raise NoPull(
            f"no pull request was merged as {args.commit}: a direct push to the main branch has "
            "no reviewed plan. Nothing was applied; run the workflow by hand to plan and apply."
        )
    for number in numbers:
        p.use(number)
        for _cid, body in ours(p):
            found = META.search(body)
            if found:
                meta = json.loads(found.group(1))
                meta["pull_request"] = number
                Path(args.out).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
                print(f"the reviewed plan of pull request {number}: {meta['digest']}")
                return 0
    raise NoPlan(
        f"pull request {', '.join(numbers)} has no plan comment with a digest (its plan failed, "
        "or was made against the snapshot). Nothing was applied; run the workflow by hand to "
        "plan and apply."
    )


def field(args: argparse.Namespace) -> int:
    print(json.loads(Path(args.file).read_text(encoding="utf-8")).get(args.key, ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plan_comment.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("post")
    p.add_argument("--markdown", required=True)
    p.add_argument("--plan")
    p.add_argument("--caused")
    p.set_defaults(run=post)
    c = sub.add_parser("caused")
    c.add_argument("--head", required=True)
    c.add_argument("--base", default="")
    c.add_argument("--out", required=True)
    c.set_defaults(run=caused)
    n = sub.add_parser("notify")
    n.add_argument("--pull", required=True)
    n.add_argument("--markdown", required=True)
    n.set_defaults(run=notify)
    a = sub.add_parser("announce")
    a.add_argument("--title", required=True)
    a.add_argument("--markdown", required=True)
    a.set_defaults(run=announce)
    r = sub.add_parser("reviewed")
    r.add_argument("--commit", required=True)
    r.add_argument("--out", required=True)
    r.set_defaults(run=reviewed)
    f = sub.add_parser("field")
    f.add_argument("file")
    f.add_argument("key")
    f.set_defaults(run=field)
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except Fail as error:
        print(f"plan_comment.py: {error}", file=sys.stderr)
        return error.status


if __name__ == "__main__":
    sys.exit(main())
