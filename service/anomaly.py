"""The anomaly review of the audit log (R-SEC-4 "定期对数据访问记录进行审计,及时发现和处理异常访问行为",
issue 15).

Rules read the log (and the accounts and documents it names) and each hit becomes a finding
(anomaly_models.AuditFinding) whose evidence is the audit rows that made it. The review runs every
night from the job table (`scheduler.DAILY_JOBS["audit_review"]`) over the last day, and on demand
(POST /api/v1/audit/review, the findings page, `inkless audit review`). A finding names its hit
(`fingerprint`), and a hit that overlaps a finding already made for the same rule and subject is
not made again, so reviews may overlap.

An auditor dismisses a finding with a reason or turns it into an issue_rectification instance,
started like every other instance (`instances.start`, by the message the quarterly assessment also
sends). Thresholds are configuration: THRESHOLDS below, overridden by INKLESS_ANOMALY_<NAME>.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from engine import clock

from . import audit, audit_log, policy
from .anomaly_models import DISMISSED, INCIDENT, OPEN, RECTIFYING, STATUSES, AuditFinding
from .errors import Conflict, Invalid, NotFound
from .localtime import PLATFORM_TZ, end_of_day_after
from .models import AuditEvent, Department, User

THRESHOLDS = {
    "failed_logins_per_account": 5,  # failed sign-ins of one account …
    "failed_logins_per_address": 10,  # … or from one address …
    "failed_logins_minutes": 15,  # … within this many minutes
    "work_day_starts": 7,  # sign-ins before this hour or from
    "work_day_ends": 22,  # this hour on (Beijing time) are unusual
    "new_address_days": 90,  # an address not seen for the person in this many days is new
    "bulk_reads_per_hour": 100,  # records and documents read by one person in an hour
    "bulk_downloads_per_hour": 30,  # documents downloaded by one person in an hour
    "secret_level": 2,  # 秘密 (documents.models.LEVELS) and above, read outside one's department
    "dormant_days": 90,  # an active account not signed in for this long
    "review_hours": 26,  # what the nightly review looks back over (a day, and some overlap)
    "rectification_days": 14,  # the deadline of a rectification started from a finding
}

RULES = {
    "failed_logins_account": N_("Burst of failed sign-ins to one account"),
    "failed_logins_address": N_("Burst of failed sign-ins from one address"),
    "unusual_hours": N_("Sign-in at an unusual hour"),
    "new_address": N_("Sign-in from a new address"),
    "bulk_reads": N_("Bulk reading"),
    "bulk_downloads": N_("Bulk downloading"),
    "secret_outside_department": N_("Classified document read outside one's department"),
    "privilege_change": N_("Privilege or configuration change outside a procedure"),
    "break_glass": N_("Break-glass access"),
    "dormant_account": N_("Dormant account"),
}
STATUS_NAMES = {OPEN: N_("Awaiting a decision"), DISMISSED: N_("Dismissed"), RECTIFYING: N_("In rectification"),
                INCIDENT: N_("Handled as a security incident")}

# Changes to who may do what, and to the platform's configuration; a procedure's own changes carry
# its instance in the detail (permission_change, account_application, …).
PRIVILEGE_ACTIONS = ("clearance_set", "group_member_added", "group_member_removed", "group_created", "group_deleted",
                     "permissions_changed", "grant_revoked", "account_created", "account_deactivated",
                     "business_type_created", "business_type_updated", "master_key_rotated", "mfa_reset")
READ_ACTIONS = ("records_read", "document_viewed", "document_history_viewed", "document_versions_compared")
DOWNLOAD_ACTIONS = ("document_downloaded",)
MAX_REASON = 2000


def thresholds() -> dict:
    configured = current_app.config["INKLESS"].anomaly_thresholds if has_app_context() else {}
    return {**THRESHOLDS, **{k: v for k, v in configured.items() if k in THRESHOLDS}}


@dataclass
class Hit:
    rule: str
    fingerprint: str
    events: list[AuditEvent]
    person_id: int | None = None
    address: str | None = None
    facts: dict = field(default_factory=dict)
    burst: bool = False  # a run of events, which a review looking back further may see part of again


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


def _events(s: Session, w: Window, actions: Iterable[str], *where) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).where(AuditEvent.action.in_(list(actions)), AuditEvent.at >= w.since,
                                                   AuditEvent.at < w.until, *where).order_by(AuditEvent.id)))


def _bursts(events: list[AuditEvent], weight: Callable[[AuditEvent], int], at_least: float,
            within: timedelta) -> list[list[AuditEvent]]:
    """Runs of events, each spanning at most `within`, whose weights add up to `at_least`; a run
    takes in every event that follows within `within` of its last, so one burst is one finding."""
    found, i = [], 0
    while i < len(events):
        total, j = 0, i
        while j < len(events) and events[j].at - events[i].at <= within:
            total += weight(events[j])
            j += 1
        if total >= at_least:
            while j < len(events) and events[j].at - events[j - 1].at <= within:
                j += 1
            found.append(events[i:j])
            i = j
        else:
            i += 1
    return found


def _one(_event) -> int:
    return 1


def _failed_logins(s: Session, w: Window, t: dict) -> list[Hit]:
    events = _events(s, w, ("login_failed",))
    within = timedelta(minutes=t["failed_logins_minutes"])
    hits = []
    by_account: dict[str, list[AuditEvent]] = defaultdict(list)
    by_address: dict[str, list[AuditEvent]] = defaultdict(list)
    for e in events:
        by_account[e.object_id or ""].append(e)
        if e.client_addr:
            by_address[e.client_addr].append(e)
    for username, rows in by_account.items():
        for run in _bursts(rows, _one, t["failed_logins_per_account"], within):
            person = next((e.actor_id for e in run if e.actor_id), None)
            hits.append(Hit("failed_logins_account", f"failed_logins_account:{username}:{run[0].id}", run, person,
                            facts={"username": username, "count": len(run),
                                   "addresses": sorted({e.client_addr for e in run if e.client_addr})}, burst=True))
    for address, rows in by_address.items():
        for run in _bursts(rows, _one, t["failed_logins_per_address"], within):
            hits.append(Hit("failed_logins_address", f"failed_logins_address:{address}:{run[0].id}", run,
                            address=address, facts={"address": address, "count": len(run),
                                                    "usernames": sorted({e.object_id or "" for e in run})},
                            burst=True))
    return hits


def _local(moment: datetime) -> datetime:
    return moment.astimezone(PLATFORM_TZ)


def _unusual_hours(s: Session, w: Window, t: dict) -> list[Hit]:
    start, end = t["work_day_starts"], t["work_day_ends"]
    by_day: dict[tuple[int, str], list[AuditEvent]] = defaultdict(list)
    for e in _events(s, w, ("login",), AuditEvent.actor_id.is_not(None)):
        local = _local(e.at)
        if not start <= local.hour < end:
            by_day[(e.actor_id, local.date().isoformat())].append(e)
    return [Hit("unusual_hours", f"unusual_hours:{person}:{day}", rows, person, rows[0].client_addr,
                facts={"day": day, "times": [_local(e.at).strftime("%H:%M") for e in rows],
                       "work_day": f"{start:02.0f}:00–{end:02.0f}:00"})
            for (person, day), rows in by_day.items()]


def _new_address(s: Session, w: Window, t: dict) -> list[Hit]:
    hits, seen = [], set()
    for e in _events(s, w, ("login",), AuditEvent.actor_id.is_not(None), AuditEvent.client_addr.is_not(None)):
        if (e.actor_id, e.client_addr) in seen:
            continue
        seen.add((e.actor_id, e.client_addr))
        earlier = select(AuditEvent.client_addr).where(
            AuditEvent.action == "login", AuditEvent.actor_id == e.actor_id, AuditEvent.id < e.id,
            AuditEvent.at >= e.at - timedelta(days=t["new_address_days"]))
        known = set(s.scalars(earlier.distinct()))
        if known and e.client_addr not in known:  # a first sign-in ever is not news
            hits.append(Hit("new_address", f"new_address:{e.actor_id}:{e.client_addr}:{e.id}", [e], e.actor_id,
                            e.client_addr, facts={"address": e.client_addr, "known": sorted(known)[:10]}))
    return hits


def _objects(e: AuditEvent) -> int:
    if e.action == audit_log.READ_ACTION:
        return max(1, sum(len(ids) for ids in (e.detail or {}).get("objects", {}).values()))
    return 1


def _bulk(rule: str, actions: tuple[str, ...], per_hour: str):
    def check(s: Session, w: Window, t: dict) -> list[Hit]:
        by_person: dict[int, list[AuditEvent]] = defaultdict(list)
        for e in _events(s, w, actions, AuditEvent.actor_id.is_not(None)):
            by_person[e.actor_id].append(e)
        return [Hit(rule, f"{rule}:{person}:{run[0].id}", run, person,
                    facts={"count": sum(_objects(e) for e in run), "per_hour": t[per_hour],
                           "from": _local(run[0].at).strftime("%H:%M"), "to": _local(run[-1].at).strftime("%H:%M")},
                    burst=True)
                for person, rows in by_person.items()
                for run in _bursts(rows, _objects, t[per_hour], timedelta(hours=1))]
    return check


def _secret_outside_department(s: Session, w: Window, t: dict) -> list[Hit]:
    from .documents.models import Document, level_name

    reader = select(User.department_id).where(User.id == AuditEvent.actor_id).scalar_subquery()
    rows = s.execute(select(AuditEvent, Document.title, Document.security_level).join(
        Document, AuditEvent.object_id == cast(Document.id, String)).where(
        AuditEvent.object_type == "document", AuditEvent.action.in_(READ_ACTIONS + DOWNLOAD_ACTIONS),
        AuditEvent.at >= w.since, AuditEvent.at < w.until, AuditEvent.actor_id.is_not(None),
        Document.security_level >= t["secret_level"], Document.department_id != reader).order_by(AuditEvent.id)).all()
    grouped: dict[tuple[int, str, str], list] = defaultdict(list)
    for e, title, level in rows:
        grouped[(e.actor_id, e.object_id, _local(e.at).date().isoformat())].append((e, title, level))
    return [Hit("secret_outside_department", f"secret_outside_department:{person}:{doc}:{day}",
                [e for e, _t, _l in found], person,
                facts={"document": doc, "title": found[0][1], "level": level_name(found[0][2]), "day": day})
            for (person, doc, day), found in grouped.items()]


def _privilege_change(s: Session, w: Window, t: dict) -> list[Hit]:
    return [Hit("privilege_change", f"privilege_change:{e.id}", [e], e.actor_id, e.client_addr,
                facts={"action": e.action, "object_type": e.object_type, "object_id": e.object_id})
            for e in _events(s, w, PRIVILEGE_ACTIONS) if not (e.detail or {}).get("instance")]


def _break_glass(s: Session, w: Window, t: dict) -> list[Hit]:
    return [Hit("break_glass", f"break_glass:{e.id}", [e], e.actor_id, e.client_addr,
                facts={"document": e.object_id, "reason": (e.detail or {}).get("reason", ""),
                       "level": (e.detail or {}).get("level", "")})
            for e in _events(s, w, ("break_glass",))]


def _dormant_accounts(s: Session, w: Window, t: dict) -> list[Hit]:
    cutoff = w.until - timedelta(days=t["dormant_days"])
    last = (select(AuditEvent.actor_id, func.max(AuditEvent.id).label("last_id"))
            .where(AuditEvent.action == "login").group_by(AuditEvent.actor_id).subquery())
    hits = []
    for user, last_id in s.execute(select(User, last.c.last_id).outerjoin(last, last.c.actor_id == User.id)
                                   .where(User.active.is_(True), User.created_at < cutoff).order_by(User.id)):
        event = s.get(AuditEvent, last_id) if last_id else None
        if event is not None and event.at >= cutoff:
            continue
        hits.append(Hit("dormant_account", f"dormant_account:{user.id}:{last_id or 'never'}",
                        [event] if event else [], user.id,
                        facts={"username": user.username, "days": t["dormant_days"],
                               "last_sign_in": event.at.isoformat() if event else None}))
    return hits


CHECKS: tuple[Callable[[Session, Window, dict], list[Hit]], ...] = (
    _failed_logins, _unusual_hours, _new_address, _bulk("bulk_reads", READ_ACTIONS, "bulk_reads_per_hour"),
    _bulk("bulk_downloads", DOWNLOAD_ACTIONS, "bulk_downloads_per_hour"), _secret_outside_department,
    _privilege_change, _break_glass, _dormant_accounts)


def _known(s: Session, hit: Hit) -> bool:
    """Made before, or overlapping a finding of the same rule and subject (a review that looked back
    into a burst the last one already reported)."""
    if s.scalar(select(AuditFinding.id).where(AuditFinding.fingerprint == hit.fingerprint)) is not None:
        return True
    if not hit.burst:
        return False
    subject = (AuditFinding.person_id == hit.person_id) if hit.person_id is not None \
        else (AuditFinding.address == hit.address)
    return s.scalar(select(AuditFinding.id).where(AuditFinding.rule == hit.rule, subject,
                                                  AuditFinding.last_at >= hit.events[0].at,
                                                  AuditFinding.first_at <= hit.events[-1].at).limit(1)) is not None


def review(s: Session, actor: User | None, since: datetime | None = None,
           until: datetime | None = None) -> list[AuditFinding]:
    """Run every rule over [since, until) (default: the last `review_hours`) and record the new
    findings; `actor` None is the nightly job. Audited; the caller commits."""
    if actor is not None:
        policy.authorize(actor, "review", "audit_finding", message=_("Only auditors may review the audit log."))
    t = thresholds()
    until = until or clock.now() + timedelta(seconds=1)  # rows are stamped to the second: this one too
    since = since or until - timedelta(hours=t["review_hours"])
    if since >= until:
        raise Invalid(_("Invalid field: %(fields)s", fields="until"),
                      [{"field": "until", "message": _("must be after the start")}])
    window = Window(since, until)
    made = []
    for check in CHECKS:
        for hit in check(s, window, t):
            if _known(s, hit):
                continue
            moments = [e.at for e in hit.events] or [until]
            finding = AuditFinding(rule=hit.rule, fingerprint=hit.fingerprint[:255], person_id=hit.person_id,
                                   address=hit.address, facts=hit.facts, evidence=[e.id for e in hit.events],
                                   first_at=min(moments), last_at=max(moments), found_at=clock.now(), status=OPEN)
            s.add(finding)
            s.flush()
            made.append(finding)
    counts: dict[str, int] = defaultdict(int)
    for finding in made:
        counts[finding.rule] += 1
    audit.record(s, "audit_review_run", "audit_finding", None, actor_id=actor.id if actor else None,
                 detail={"since": since.isoformat(), "until": until.isoformat(), "found": dict(counts),
                         "findings": [f.id for f in made]})
    return made


def fire(s: Session, job) -> int:
    """The nightly review (a daily job of service/scheduler.py), moved to the next night."""
    from .scheduler import DAILY_JOBS, next_daily

    made = review(s, None)
    job.fired += 1
    job.due_at = next_daily(max(clock.now(), job.due_at), DAILY_JOBS["audit_review"][1])
    return len(made)


# --- reading and deciding ------------------------------------------------------------------------

def _reader(user: User) -> User:
    return policy.authorize(user, "read", "audit_finding", message=_("Only auditors may read the audit log."))


def rule_name(code: str) -> str:
    return str(RULES[code]) if code in RULES else code


def status_name(code: str) -> str:
    return str(STATUS_NAMES[code]) if code in STATUS_NAMES else code


def describe(f: AuditFinding) -> str:
    """What the rule saw, in the reader's language."""
    facts = f.facts or {}
    if f.rule == "failed_logins_account":
        return _("%(count)s failed sign-ins to account %(username)s within a short time (from %(addresses)s).",
                 count=facts.get("count"), username=facts.get("username"),
                 addresses=", ".join(facts.get("addresses") or []) or "?")
    if f.rule == "failed_logins_address":
        return _("%(count)s failed sign-ins from address %(address)s within a short time (accounts: %(usernames)s).",
                 count=facts.get("count"), address=facts.get("address"),
                 usernames=", ".join(facts.get("usernames") or []))
    if f.rule == "unusual_hours":
        return _("Signed in on %(day)s at %(times)s, outside the working day %(work_day)s.", day=facts.get("day"),
                 times=", ".join(facts.get("times") or []), work_day=facts.get("work_day"))
    if f.rule == "new_address":
        return _("Signed in from %(address)s, not seen for this person before (known: %(known)s).",
                 address=facts.get("address"), known=", ".join(facts.get("known") or []))
    if f.rule in ("bulk_reads", "bulk_downloads"):
        return _("%(count)s records between %(start)s and %(end)s (threshold %(limit)s an hour).",
                 count=facts.get("count"), start=facts.get("from"), end=facts.get("to"), limit=facts.get("per_hour"))
    if f.rule == "secret_outside_department":
        return _("Read %(level)s document %(title)s (No. %(document)s) of another department on %(day)s.",
                 level=facts.get("level"), title=facts.get("title"), document=facts.get("document"),
                 day=facts.get("day"))
    if f.rule == "privilege_change":
        return _("%(action)s on %(object)s %(id)s, not by a procedure.", action=audit_log.action_name(
            facts.get("action", "")), object=audit_log.object_name(facts.get("object_type")), id=facts.get("object_id") or "")
    if f.rule == "break_glass":
        return _("Opened %(level)s document No. %(document)s above their clearance: %(reason)s",
                 level=facts.get("level"), document=facts.get("document"), reason=facts.get("reason"))
    if f.rule == "dormant_account":
        if facts.get("last_sign_in"):
            return _("Account %(username)s is active but has not signed in for more than %(days)s days.",
                     username=facts.get("username"), days=facts.get("days"))
        return _("Account %(username)s is active but has never signed in in more than %(days)s days.",
                 username=facts.get("username"), days=facts.get("days"))
    return ""


@dataclass(frozen=True)
class Listed:
    finding: AuditFinding
    rule_name: str
    status_name: str
    description: str
    username: str | None
    full_name: str | None
    department: str | None
    decided_by: str | None


def _listed(s: Session, f: AuditFinding) -> Listed:
    person = s.get(User, f.person_id) if f.person_id else None
    decider = s.get(User, f.decided_by) if f.decided_by else None
    return Listed(f, rule_name(f.rule), status_name(f.status), describe(f), person.username if person else None,
                  person.full_name if person else None, person.department.name if person else None,
                  decider.full_name if decider else None)


def findings(s: Session, reader: User, status: str | None = None, rule: str | None = None,
             person: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[Listed], int]:
    """Findings, newest first; the read is audited and committed."""
    _reader(reader)
    if status is not None and status not in STATUSES:
        raise Invalid(_("Invalid field: %(fields)s", fields="status"),
                      [{"field": "status", "message": " | ".join(STATUSES)}])
    if rule is not None and rule not in RULES:
        raise Invalid(_("Invalid field: %(fields)s", fields="rule"), [{"field": "rule", "message": _("unknown rule")}])
    query = select(AuditFinding)
    if status:
        query = query.where(AuditFinding.status == status)
    if rule:
        query = query.where(AuditFinding.rule == rule)
    if person:
        query = query.join(User, User.id == AuditFinding.person_id).where(User.username == person)
    total = s.scalar(select(func.count()).select_from(query.subquery()))
    rows = s.scalars(query.order_by(AuditFinding.id.desc()).offset(offset).limit(limit)).all()
    audit.record(s, "audit_findings_read", "audit_finding", None, actor_id=reader.id,
                 detail={"status": status, "rule": rule, "person": person, "rows": len(rows)})
    s.commit()
    return [_listed(s, f) for f in rows], total


def _get(s: Session, finding_id: int) -> AuditFinding:
    finding = s.get(AuditFinding, finding_id)
    if finding is None:
        raise NotFound(_("There is no finding %(id)s.", id=finding_id))
    return finding


def shown(s: Session, found: AuditFinding) -> tuple[Listed, list[audit_log.Row]]:
    """A finding with its evidence rows, for whoever just decided it (their decision is the audit row)."""
    return _listed(s, found), audit_log.by_ids(s, found.evidence or [])


def finding(s: Session, reader: User, finding_id: int) -> tuple[Listed, list[audit_log.Row]]:
    """One finding with its evidence rows; the read is audited and committed."""
    _reader(reader)
    listed, evidence = shown(s, _get(s, finding_id))
    audit.record(s, "audit_findings_read", "audit_finding", finding_id, actor_id=reader.id,
                 detail={"evidence": len(evidence)})
    s.commit()
    return listed, evidence


def _decidable(s: Session, actor: User, finding_id: int) -> AuditFinding:
    policy.authorize(actor, "review", "audit_finding", message=_("Only auditors may review the audit log."))
    found = _get(s, finding_id)
    if found.status != OPEN:
        raise Conflict(_("Finding %(id)s is already decided: %(status)s.", id=found.id, status=status_name(found.status)))
    return found


def dismiss(s: Session, actor: User, finding_id: int, reason: str) -> AuditFinding:
    """Close a finding as no anomaly, saying why. Audited; the caller commits."""
    reason = (reason or "").strip()
    found = _decidable(s, actor, finding_id)
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(_("Invalid field: %(fields)s", fields="reason"),
                      [{"field": "reason", "message": _("required (at most 2000 characters)")}])
    found.status, found.decided_by, found.decided_at, found.reason = DISMISSED, actor.id, clock.now(), reason
    audit.record(s, "audit_finding_dismissed", "audit_finding", found.id, actor_id=actor.id,
                 detail={"rule": found.rule, "reason": reason})
    return found


SEVERITIES = ("low", "medium", "high")


def rectify(s: Session, actor: User, finding_id: int, department: str | None = None, severity: str = "medium",
            note: str = "") -> AuditFinding:
    """Hand the finding to the responsible department as an issue_rectification instance (started
    by its message, as the quarterly assessment does); `department` defaults to the person's."""
    from . import instances
    from .procedures.departments import responsible_department_problem

    found = _decidable(s, actor, finding_id)
    person = s.get(User, found.person_id) if found.person_id else None
    code = (department or "").strip() or (person.department.code if person else None)
    if not code:
        raise Invalid(_("Invalid field: %(fields)s", fields="department"),
                      [{"field": "department", "message": _("name the responsible department")}])
    problem, _department = responsible_department_problem(s, code)
    if problem:
        raise Invalid(_("Invalid field: %(fields)s", fields="department"), [{"field": "department", "message": problem}])
    if severity not in SEVERITIES:
        raise Invalid(_("Invalid field: %(fields)s", fields="severity"),
                      [{"field": "severity", "message": " | ".join(SEVERITIES)}])
    note = (note or "").strip()[:MAX_REASON]
    deadline = end_of_day_after(clock.now(), int(thresholds()["rectification_days"]))
    who = f"{person.full_name}({person.username})" if person else (found.address or "")
    text = f"审计发现 #{found.id}「{RULES[found.rule]}」:{who} {describe(found)}"
    if note:
        text += f" 审计员意见:{note}"
    payload = {"department": code, "problem": text, "severity": severity, "deadline": deadline,
               "category": "security", "evidence": f"审计日志记录 {', '.join(map(str, found.evidence or []))}"}
    outcome = instances.start(s, actor, "issue_rectification", business_key=f"audit-finding-{found.id}",
                              message=("rectification_required", payload))
    found.status, found.decided_by, found.decided_at = RECTIFYING, actor.id, clock.now()
    found.reason, found.instance_id = note or None, outcome.instance.id
    audit.record(s, "audit_finding_rectification", "audit_finding", found.id, actor_id=actor.id,
                 detail={"rule": found.rule, "instance": outcome.instance.id, "department": code})
    return found


def open_incident(s: Session, actor: User, finding_id: int, note: str = "") -> AuditFinding:
    """Hand the finding to the platform as a security incident (R-SEC-2): security_incident.bpmn
    starts on its message with the finding as the report, and the finding links the instance."""
    from . import instances

    found = _decidable(s, actor, finding_id)
    person = s.get(User, found.person_id) if found.person_id else None
    note = (note or "").strip()[:MAX_REASON]
    who = f"{person.full_name}({person.username})" if person else (found.address or "")
    details = f"{who} {describe(found)}(审计日志记录 {', '.join(map(str, found.evidence or []))})"
    if note:
        details += f" 审计员意见:{note}"
    payload = {"source": "finding", "title": f"审计发现 #{found.id}「{RULES[found.rule]}」", "details": details,
               "occurred_at": found.first_at.isoformat()}
    outcome = instances.start(s, actor, "security_incident", business_key=f"audit-finding-{found.id}",
                              message=("security_incident_reported", payload))
    found.status, found.decided_by, found.decided_at = INCIDENT, actor.id, clock.now()
    found.reason, found.instance_id = note or None, outcome.instance.id
    audit.record(s, "audit_finding_incident", "audit_finding", found.id, actor_id=actor.id,
                 detail={"rule": found.rule, "instance": outcome.instance.id})
    return found


# --- the monthly access review for supervisors -----------------------------------------------------

def month_bounds(month: str | None) -> tuple[str, datetime, datetime]:
    """`2026-11` (Beijing months) → its label and [start, end); default the month before this one."""
    from datetime import date

    if month:
        try:
            year, number = (int(p) for p in month.split("-"))
            first = date(year, number, 1)
        except ValueError:
            raise Invalid(_("Invalid field: %(fields)s", fields="month"),
                          [{"field": "month", "message": _("a month such as 2026-11")}]) from None
    else:
        today = _local(clock.now()).date().replace(day=1)
        first = (today - timedelta(days=1)).replace(day=1)
    after = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    start = datetime(first.year, first.month, 1, tzinfo=PLATFORM_TZ)
    end = datetime(after.year, after.month, 1, tzinfo=PLATFORM_TZ)
    return f"{first.year}-{first.month:02d}", start, end


def access_review(s: Session, reader: User, month: str | None = None) -> dict:
    """Per department: sign-ins, failed sign-ins, records and documents read and downloaded, and the
    month's findings by rule and status. Supervisors and auditors; audited and committed."""
    policy.authorize(reader, "read", "access_review",
                     message=_("Only the supervision group and auditors may read the access review."))
    label, start, end = month_bounds(month)
    counted = {"login": "sign_ins", "login_failed": "failed_sign_ins", "records_read": "reads",
               "document_viewed": "document_reads", "document_downloaded": "downloads"}
    departments = {d.id: d for d in s.scalars(select(Department).order_by(Department.code))}
    table: dict[int | None, dict] = {}

    def row(department_id):
        return table.setdefault(department_id, {**{v: 0 for v in counted.values()}, "people": 0,
                                                "findings": 0, "open": 0})

    for department_id, action, n, people in s.execute(
            select(User.department_id, AuditEvent.action, func.count(), func.count(func.distinct(AuditEvent.actor_id)))
            .join(User, User.id == AuditEvent.actor_id)
            .where(AuditEvent.at >= start, AuditEvent.at < end, AuditEvent.action.in_(list(counted)))
            .group_by(User.department_id, AuditEvent.action)):
        entry = row(department_id)
        entry[counted[action]] += n
        if action == "login":
            entry["people"] = people
    by_rule: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f, department_id in s.execute(select(AuditFinding, User.department_id)
                                      .outerjoin(User, User.id == AuditFinding.person_id)
                                      .where(AuditFinding.found_at >= start, AuditFinding.found_at < end)):
        entry = row(department_id)
        entry["findings"] += 1
        entry["open"] += f.status == OPEN
        by_rule[f.rule][f.status] += 1
    rows = [{"department": departments[d].code if d in departments else None,
             "department_name": departments[d].name if d in departments else _("No department"), **v}
            for d, v in sorted(table.items(), key=lambda kv: (kv[0] is None, departments[kv[0]].code
                                                               if kv[0] in departments else ""))]
    audit.record(s, "access_review_read", "access_review", label, actor_id=reader.id, detail={"month": label})
    s.commit()
    return {"month": label, "start": start, "end": end, "departments": rows,
            "rules": [{"rule": rule, "rule_name": rule_name(rule), **{k: by_rule[rule].get(k, 0) for k in STATUSES}}
                      for rule in RULES if rule in by_rule]}


ACCESS_COLUMNS = [("department_name", N_("Department")), ("people", N_("People who signed in")),
                  ("sign_ins", N_("Sign-ins")), ("failed_sign_ins", N_("Failed sign-ins")),
                  ("reads", N_("Record reads")), ("document_reads", N_("Document reads")),
                  ("downloads", N_("Downloads")), ("findings", N_("Findings")), ("open", N_("Open findings"))]
