"""Notices after an apply (QN-2020 Đ7.2, HG-2024 Đ7.3; replies to requests, QN-2020 Đ5.2, Đ6.2,
Đ7.1): one per agency, in Vietnamese, plain and printable: what was done to which mailbox, when,
under which clause; what was refused or not done, and why. Never a password. A person whose
mailbox a plan suspends and whose record gives an external address (`external_email`) is told
of their own case there too, since the mailbox cannot receive (QN-2020 Đ7.2): only that.

`build()` is pure (the plan, what apply did, the clock); `write()` puts each notice in a `.eml`
file (RFC 5322, UTF-8), `send()` hands them to an SMTP relay (`notices.relay` in directory.yaml,
carried in the plan so that the reviewed plan says where its notices go).
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import os
import re
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from email import quoprimime
from email.message import EmailMessage
from email.policy import default as _POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.attributes import LOCK, SUSPEND_REASON
from reconciler.errors import ReconcilerError
from reconciler.model import Action, Contact, Kind, Operation, Owner, Plan, Refusal
from reconciler.rules import regulations
from reconciler.rules.lifecycle import ZONE
from reconciler.rules.regulations import Regulation

if TYPE_CHECKING:
    from reconciler.applying.inflight import Outcome

    #: An outcome done, its number in its agency's list, and its item's lines.
    Draft = tuple[Outcome, int, list[str]]

WIDTH = 76
#: An agency id that names its notice's file as it is (agency.schema.json; short enough for a name).
_FILE_AGENCY = re.compile(r"[a-z0-9-]{0,200}\Z")
#: A person's id that names their notice's file as it is (agency.schema.json's staff id).
_FILE_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,200}\Z")
#: What apply did with an operation (`Recap.outcomes`).
DONE = frozenset({"changed", "ok"})

_VERBS = {
    Action.CREATE: "Cấp mới hộp thư",
    Action.RENAME: "Đổi địa chỉ hộp thư",
    Action.UPDATE: "Cập nhật thông tin hộp thư",
    Action.SUSPEND: "Tạm khóa hộp thư",
    Action.RESTORE: "Khôi phục hộp thư",
    Action.DELETE: "Xóa hộp thư",
}


@dataclass(frozen=True, slots=True)
class Notice:
    agency: str
    to: tuple[str, ...]
    subject: str
    body: str
    #: the person's id when the notice is to the owner of a suspended mailbox ("" = the agency)
    owner: str = ""


#: A clause in Vietnamese (`regulations.cite`), worked out once per clause: a notice cites the
#: same few clauses for thousands of mailboxes.
_cite = functools.lru_cache(maxsize=1024)(regulations.cite)


def _day(moment: dt.datetime) -> str:
    return moment.astimezone(ZONE).strftime("%d/%m/%Y")


def _subject(when: dt.datetime) -> str:
    """An agency's notice's subject."""
    return f"Thông báo kết quả xử lý hộp thư điện tử công vụ ngày {_day(when)}"


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(ZONE).strftime("%H:%M ngày %d/%m/%Y")


#: Whitespace that textwrap turns into blanks: a text holding any takes textwrap's own way.
_ODD_SPACE = re.compile("[\t\n\x0b\x0c\r]")
_CHUNKS = textwrap.TextWrapper.wordsep_re


def _wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    """`textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest)`, line for
    line, without its cost (it took a tenth of an apply of 20,000 creates): for the texts a notice
    holds (words between single blanks, none longer than a line, none that textwrap would break
    at a hyphen) the same greedy fill, a line at a time; any other text goes to textwrap."""
    words = text.split(" ")
    if (
        not text
        or not words[0]
        or not words[-1]
        or "  " in text
        or _ODD_SPACE.search(text)
        or max(map(len, words)) > WIDTH - max(len(first), len(rest))
        or any(len(_CHUNKS.findall(w)) > 1 for w in words if "-" in w)
    ):
        return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest)
    lines = []
    indent = first
    while len(indent) + len(text) > WIDTH:
        cut = text.rfind(" ", 0, WIDTH - len(indent) + 1)
        lines.append(indent + text[:cut])
        text = text[cut + 1 :]
        indent = rest
    lines.append(indent + text)
    return lines


def _item(number: int, text: str) -> list[str]:
    return _wrap(text, f"{number}. ", "   ")


def _who(op: Operation) -> str:
    """Whose mailbox: a person with their staff number; an organisation or unit mailbox by its
    name only (its key, `agency:…` / `unit:…`, is the tool's, not words for the agency)."""
    if op.kind is not Kind.PERSON and op.name:
        return op.name
    return f"{op.name} ({op.id})" if op.name else op.id


def _created_suspended(op: Operation, regulation: Regulation) -> str:
    """What to add when a create makes the mailbox already suspended (a record declared
    `state: suspended`, or a moved mailbox that was): its owner cannot use it yet."""
    if op.action is not Action.CREATE or not any(c.attr == LOCK for c in op.attributes):
        return ""
    reasons = [v for c in op.attributes if c.attr == SUSPEND_REASON for v in c.after]
    clause = str(reasons[0]).split(":", 1)[0] if reasons else ""
    ground = f" theo {_cite(clause, regulation)}" if clause else ""
    return (
        f" Hộp thư được cấp ở trạng thái tạm khóa{ground}: chưa thể đăng nhập, gửi, nhận thư "
        "cho đến khi được khôi phục."
    )


def _done(op: Operation, regulation: Regulation, when: dt.datetime) -> str:
    who = _who(op)
    what = _VERBS[op.action]
    if op.action is Action.RENAME:
        what += f" {op.previous} thành {op.address}"
    else:
        what += f" {op.address}"
    text = f"{what} của {who}, lúc {_time(when)}, theo {_cite(op.clause, regulation)}."
    if op.address_clause:
        text += f" Địa chỉ theo {_cite(op.address_clause, regulation)}."
    if op.action is Action.RENAME:
        text += " Địa chỉ cũ vẫn nhận thư."
    if op.source is not None:  # moved in a merger: the password it had
        text += (
            " Hộp thư được chuyển từ hệ thống của tỉnh cũ: mật khẩu giữ nguyên, địa chỉ cũ vẫn "
            "nhận thư."
        )
    elif any(c.attr == "userPassword" for c in (*op.attributes, *op.changes)):
        text += (
            " Mật khẩu tạm thời được bàn giao riêng, không gửi qua thư này, và phải đổi ở lần "
            "đăng nhập đầu tiên."
        )
    text += _created_suspended(op, regulation)
    if op.action is Action.SUSPEND:
        text += " Hộp thư không thể đăng nhập, gửi, nhận thư cho đến khi được khôi phục."
    if op.action is Action.DELETE:
        text += " Hộp thư đã xóa không thể khôi phục."
    return text


def _refused(r: Refusal, regulation: Regulation) -> str:
    return (
        f"Hộp thư của {r.name} ({r.id}): không cấp lại, vì hộp thư của người này đã bị xóa và "
        f"không thể khôi phục ({_cite(r.clause, regulation)}). Đề nghị cơ quan bỏ hồ sơ "
        "khỏi danh sách, hoặc gửi văn bản đề nghị cấp mới; hộp thư mới sẽ có địa chỉ mới."
    )


def _failed(op: Operation, outcome: str) -> str:
    who = _who(op)
    why = "do sự cố kỹ thuật" if outcome == "failed" else "vì thao tác trước đó gặp sự cố"
    return (
        f"{_VERBS[op.action]} {op.address} của {who}: chưa thực hiện được {why}; Trung tâm sẽ "
        "thực hiện lại."
    )


class Drafts:
    """The items of what apply did, worked out while its writes are in flight, so that `build`
    at the end only assembles them: for each outcome done, `_item(n, _done(op, regulation,
    at))`, n its number in its agency's list, as `build` makes it. `step` is given the recap's
    outcomes as they stand (appended in order, never changed) and drafts the next ones, for at
    most `SLICE` seconds. A failure gives the drafts up: `build` then works out every item.
    Once every outcome given is drafted, the header lines the notices will share (`sender`,
    the recipients of the `plan`'s contacts, today's subject) and the content's are folded
    ahead, one at a time, for `rendered` (some 7 ms for 50 agencies)."""

    #: The longest slice, in seconds: shorter than the writes the server has queued (about half
    #: a millisecond each, with syncing), so that the window never drains while drafting.
    SLICE = 0.0008

    def __init__(self, regulation: Regulation, plan: Plan | None = None, sender: str = "") -> None:
        self.regulation = regulation
        #: one per outcome drafted, in its order: None for one not done (`build` says why)
        self.drafted: list[Draft | None] = []
        self.broken = False
        self._numbers: dict[str, int] = {}  # each agency's items so far
        #: what `rendered` will fold, folded ahead (an error here is met again when writing)
        self._ahead: list[Callable[[], object]] = []
        if plan is not None:
            recipients = {", ".join(c.to) for c in plan.contacts if c.to}
            self._ahead = [
                functools.partial(_content_head, "base64"),
                functools.partial(_shared_header, "From", sender),
                *(functools.partial(_shared_header, "To", to) for to in sorted(recipients)[:200]),
                lambda: _shared_header("Subject", _subject(dt.datetime.now(dt.UTC))),
            ]

    def step(self, outcomes: Sequence[Outcome]) -> bool:
        """Draft the next outcomes for one slice; whether some are left undrafted. Never
        raises."""
        if self.broken:
            return False
        try:
            return self._step(outcomes)
        except Exception:  # drafting is only a head start: build does it all
            self.broken = True
            return False

    def _step(self, outcomes: Sequence[Outcome]) -> bool:
        drafted, numbers, regulation = self.drafted, self._numbers, self.regulation
        deadline = time.perf_counter() + self.SLICE
        while len(drafted) < len(outcomes):
            entry = outcomes[len(drafted)]
            op, outcome, at = entry
            if outcome in DONE:
                n = numbers.get(op.agency, 0) + 1
                lines = _item(n, _done(op, regulation, at))
                numbers[op.agency] = n
                drafted.append((entry, n, lines))
            else:
                drafted.append(None)
            if time.perf_counter() > deadline:
                return len(drafted) < len(outcomes) or bool(self._ahead)
        while self._ahead:  # at least one a slice, as for the outcomes
            with suppress(Exception):
                self._ahead.pop()()
            if time.perf_counter() > deadline:
                break
        return bool(self._ahead)

    def usable(self, regulation: Regulation) -> Sequence[Draft | None]:
        """The drafts, when they can be used for a build under `regulation`."""
        return self.drafted if not self.broken and regulation is self.regulation else ()


def build(
    plan: Plan,
    outcomes: Sequence[Outcome],
    regulation: Regulation,
    when: dt.datetime,
    owners: Sequence[Owner] = (),
    drafts: Drafts | None = None,
) -> list[Notice]:
    """One notice per agency the plan touched (operations or refusals), in the plan's order;
    then one to each of `owners` (those apply trusts, `invariants.trusted_owners`) whose mailbox
    this apply suspended. `drafts`: the items of `outcomes` worked out while apply ran, taken
    as they are (the same bytes: an item whose draft is missing or not its own is worked out
    here)."""
    contacts = {c.agency: c for c in plan.contacts}
    agencies = [c.agency for c in plan.contacts]
    agencies += sorted({op.agency for op, _, _ in outcomes} - set(agencies))
    # each agency's share, in the plan's order, in one pass (not one pass per agency): the
    # items of what was done as drafted while the writes were in flight, the others now
    drafted = drafts.usable(regulation) if drafts is not None else []
    done_by: dict[str, list[list[str]]] = {}
    not_done_by: dict[str, list[tuple[Operation, str]]] = {}
    for i, entry in enumerate(outcomes):
        op, outcome, at = entry
        if outcome in DONE:
            share = done_by.setdefault(op.agency, [])
            draft = drafted[i] if i < len(drafted) else None
            if draft is not None and draft[0] is entry and draft[1] == len(share) + 1:
                share.append(draft[2])
            else:
                share.append(_item(len(share) + 1, _done(op, regulation, at)))
        else:
            not_done_by.setdefault(op.agency, []).append((op, outcome))
    refused_by: dict[str, list[Refusal]] = {}
    for r in plan.refused:
        refused_by.setdefault(r.agency, []).append(r)
    # the same words open every agency's notice: wrapped once (the decision's name sends them
    # to textwrap's own way, a tenth of the notices' time)
    opening = _wrap(
        "Trung tâm quản lý hệ thống thư điện tử công vụ thông báo kết quả xử lý các hộp "
        f"thư điện tử công vụ của cơ quan, đơn vị ngày {_day(when)}, theo "
        f"{regulation.decision}."
    )
    closing = _wrap(
        "Thư này được gửi tự động sau khi thực hiện; mật khẩu không bao giờ được gửi qua "
        "thư. Mọi thắc mắc xin liên hệ Trung tâm."
    )
    notices = []
    for agency in agencies:
        done = done_by.get(agency, [])
        not_done = not_done_by.get(agency, [])
        refused = refused_by.get(agency, [])
        if not (done or not_done or refused):
            continue
        contact = contacts.get(agency)
        name = contact.name if contact else agency
        lines = [
            f"Kính gửi: {name}",
            "",
            *opening,
            "",
            "A. Đã thực hiện",
        ]
        for item in done:
            lines += item
        if not done:
            lines.append("(không có)")
        lines += ["", "B. Không thực hiện hoặc chưa thực hiện được"]
        items = [_refused(r, regulation) for r in refused] + [_failed(o, w) for o, w in not_done]
        for n, text in enumerate(items, 1):
            lines += _item(n, text)
        if not items:
            lines.append("(không có)")
        lines += ["", *closing]
        notices.append(
            Notice(
                agency=agency,
                to=contact.to if contact else (),
                subject=_subject(when),
                body="\n".join(lines) + "\n",
            )
        )
    suspended = {
        (op.id, op.agency): (op, at)
        for op, outcome, at in outcomes
        if op.action is Action.SUSPEND and op.kind is Kind.PERSON and outcome in DONE
    }
    for owner in owners:
        if (owner.id, owner.agency) in suspended:
            op, at = suspended[owner.id, owner.agency]
            notices.append(_to_owner(owner, op, at, contacts.get(owner.agency), regulation))
    return notices


def _to_owner(
    owner: Owner, op: Operation, at: dt.datetime, contact: Contact | None, regulation: Regulation
) -> Notice:
    """The notice to the owner of a mailbox this apply suspended, at their external address: what
    was done to their own mailbox, when, under which clause, and whom to ask; nothing of anyone
    else's case."""
    agency = contact.name if contact else op.agency
    where = f"{agency} qua hộp thư {', '.join(contact.to)}" if contact and contact.to else agency
    paragraphs = [
        "Trung tâm quản lý hệ thống thư điện tử công vụ thông báo, theo "
        f"{regulation.decision}: hộp thư điện tử công vụ {op.address} của Ông/Bà đã bị tạm "
        f"khóa lúc {_time(at)}, theo {_cite(op.clause, regulation)}.",
        "Hộp thư không thể đăng nhập, gửi, nhận thư cho đến khi được khôi phục; vì vậy thông báo "
        "này được gửi đến địa chỉ thư riêng mà cơ quan đã đăng ký cho Ông/Bà.",
        f"Mọi thắc mắc, hoặc đề nghị khôi phục hộp thư, xin liên hệ {where}.",
        "Thư này được gửi tự động; mật khẩu không bao giờ được gửi qua thư.",
    ]
    lines = [f"Kính gửi: Ông/Bà {op.name or op.id}"]
    for paragraph in paragraphs:
        lines += ["", *textwrap.wrap(paragraph, WIDTH, break_on_hyphens=False)]
    return Notice(
        agency=owner.agency,
        to=(owner.to,),
        subject=f"Thông báo tạm khóa hộp thư điện tử công vụ {op.address}",
        body="\n".join(lines) + "\n",
        owner=owner.id,
    )


def _headers(notice: Notice, sender: str, when: dt.datetime) -> list[tuple[str, str]]:
    to = [("To", ", ".join(notice.to))] if notice.to else []
    return [
        ("From", sender),
        *to,
        ("Subject", notice.subject),
        ("Date", format_datetime(when.astimezone(ZONE))),
        ("Message-ID", make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)),
    ]


def message(notice: Notice, sender: str, when: dt.datetime) -> EmailMessage:
    msg = EmailMessage()
    for name, value in _headers(notice, sender, when):
        msg[name] = value
    msg.set_content(notice.body, charset="utf-8")
    return msg


def _header(name: str, value: str) -> bytes:
    """A header line as `bytes(message(…))` writes it: parsed (a line break in it is refused)
    and folded by the email package."""
    return _POLICY.fold_binary(*_POLICY.header_store_parse(name, value))


_shared_header = functools.lru_cache(maxsize=256)(_header)


def rendered(notice: Notice, sender: str, when: dt.datetime) -> bytes:
    """`bytes(message(notice, sender, when))`, the same bytes, with the header lines the notices
    of a run share (sender, subject, date) folded once: the email package's parsing and folding
    of each took most of the time of writing a notice (2.5 ms of it, the subject alone 0.65);
    its Message-ID's line and its content (`_content`) written without the email package's
    header objects and generator where the result is known (0.25 s for the notices of 20,000
    creates, most of it the generator writing line by line)."""
    head = [
        _message_id(value) if name == "Message-ID" else _shared_header(name, value)
        for name, value in _headers(notice, sender, when)
    ]
    return b"".join(head) + _content(notice.body)


#: A Message-ID as `make_msgid` makes it for a plain domain: the email package writes its line
#: as it is (the test holds it to that).
_PLAIN_ID = re.compile(r"<[0-9.]+@[A-Za-z0-9][A-Za-z0-9.-]*>\Z")


def _message_id(value: str) -> bytes:
    if len(value) <= 60 and _PLAIN_ID.match(value):
        return f"Message-ID: {value}\n".encode("ascii")
    return _header("Message-ID", value)


@functools.lru_cache(maxsize=8)
def _content_head(cte: str) -> bytes:
    """The header lines (and the blank line) the email package writes for a text content set
    with `charset="utf-8"` and this transfer encoding: its own, worked out once."""
    part = EmailMessage()
    part.set_content("x", charset="utf-8", cte=cte)
    data = bytes(part)
    return data[: data.index(b"\n\n") + 2]


#: The email policy's longest line (78), on which the choice of a transfer encoding depends.
_LONGEST: int = _POLICY.max_line_length or 78
#: Line ends as the email package's generator rewrites them (`email.generator.NLCRE`).
_LINE_END = re.compile(r"\r\n|\r|\n")
#: A line of base64 as the email package writes it (policy.max_line_length 78): 76 characters,
#: 57 bytes encoded.
_BASE64_LINE = re.compile(rb"[^\n]{1,76}")


def _content(text: str) -> bytes:
    """`bytes()` of an `EmailMessage` whose content is `text` (`set_content(text,
    charset="utf-8")`): the same transfer encoding, chosen as the email package chooses it
    (`email.contentmanager`: 7bit when every line is ASCII and short enough, else 8bit when
    they are short enough, else quoted-printable or base64, whichever makes its first ten lines
    shorter), and the same bytes, with what is known of the result written at once."""
    lines = text.encode("utf-8").splitlines()
    normal = b"\n".join(lines) + b"\n"
    if max(map(len, lines), default=0) <= _LONGEST:  # 8bit: the policy's cte_type
        return _content_head("7bit" if normal.isascii() else "8bit") + normal
    sniff = b"\n".join(lines[:10]) + b"\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _LONGEST)
    if len(sniff_qp) <= len(binascii.b2a_base64(sniff)):
        if len(lines) > 10:  # chosen on its first ten lines: the whole, encoded
            sniff_qp = quoprimime.body_encode(normal.decode("latin-1"), _LONGEST)
        return _content_head("quoted-printable") + _LINE_END.sub("\n", sniff_qp).encode("ascii")
    # the email package encodes 57 bytes a line (`_LONGEST // 4 * 3`): the lines of the whole
    encoded = _BASE64_LINE.findall(binascii.b2a_base64(normal, newline=False))
    return _content_head("base64") + b"\n".join(encoded) + b"\n"


def file_name(agency: str, owner: str = "") -> str:
    """The notice's part of its file name: its agency's id, and for an owner's notice the
    person's id after it; anything else (a plan's or an entry's govMailAgency that is no id: a
    slash, a NUL byte, a name too long) by its digest, so that the file stays in its folder."""
    name = _safe(agency, _FILE_AGENCY, "agency-")
    return f"{name}-owner-{_safe(owner, _FILE_OWNER, 'id-')}" if owner else name


def _safe(value: str, plain: re.Pattern[str], prefix: str) -> str:
    if plain.match(value):
        return value
    return prefix + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def write(
    notices: Iterable[Notice], folder: Path, sender: str, when: dt.datetime
) -> list[tuple[Notice, Path]]:
    """Each notice as `<time>-<agency>.eml` in `folder` (mode 0600: names of staff)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    written = []
    for notice in notices:
        path = folder / f"{stamp}-{file_name(notice.agency, notice.owner)}.eml"
        data = rendered(notice, sender, when)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as error:
            raise ReconcilerError(f"cannot write the notice {path}: {error.strerror}") from None
        written.append((notice, path))
    return written


def send(written: Iterable[tuple[Notice, Path]], relay: str, sender: str) -> int:
    """Hand every notice with a recipient to the SMTP relay (`smtp://host[:port]`, or
    `smtps://`); the number sent. The relay's user and password, when it needs them, come from
    RECONCILER_SMTP_USER / RECONCILER_SMTP_PASSWORD, never from a file in the repository."""
    url = urlsplit(relay)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise ReconcilerError(f"notices.relay {relay!r} is not smtp://HOST[:PORT] or smtps://")
    port = url.port or (465 if url.scheme == "smtps" else 25)
    import smtplib  # only when a relay is named: most applies never load it

    client = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    sent = 0
    try:
        with client(url.hostname, port, timeout=30) as smtp:
            user = os.environ.get("RECONCILER_SMTP_USER")
            if user:
                smtp.login(user, os.environ.get("RECONCILER_SMTP_PASSWORD", ""))
            for notice, path in written:
                if not notice.to:
                    continue
                smtp.send_message(message_from(path), sender, list(notice.to))
                sent += 1
    except (OSError, smtplib.SMTPException) as error:
        raise ReconcilerError(
            f"the notices could not be sent through {url.hostname}:{port}: {error}. They are "
            "written as .eml files: send them by hand, or fix the relay and send them again."
        ) from None
    return sent


def message_from(path: Path) -> EmailMessage:
    from email import message_from_bytes, policy

    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed
