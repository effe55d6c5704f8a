"""The database schema. Every change here comes with an Alembic migration in migrations/."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine import clock

from .db import Base, UTCDateTime

ROLES = ("user", "dept_admin", "system_admin")  # R-ACC-3
# The functional groups every installation has (code: Chinese name, English name). The permission
# table (service/policy.py) gives them rights, so they are never renamed or deleted; departments
# add groups of their own (service/groups.py).
BUILTIN_GROUPS = {
    "dept_head": ("部门负责人", "Department heads"),
    "platform_admin": ("平台管理部门", "Platform management department"),
    "supervisor": ("监督小组", "Supervision group"),
    "designer": ("流程设计", "Process designers"),
    "confidentiality_officer": ("保密员", "Confidentiality officers"),
    "inspector": ("检查员", "Inspectors"),
    # Read the audit log and review its anomalies (R-SEC-4, R-SEC-8); nothing else (issue 15).
    "auditor": ("审计员", "Auditors"),
}


def utcnow() -> datetime:
    return clock.now()


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))  # shown under English when given
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    head_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True, name="fk_department_head"))

    parent: Mapped[Department | None] = relationship(remote_side=[id])


class Group(Base):
    """A functional group (dept_head, platform_admin, supervisor, designer, …) — R-ACC-3.

    A lane or a `performers` property names it by its code. It belongs to a department, whose
    administrators keep it and whose people alone are its members, or to the platform
    (`department_id` NULL): the built-in groups and those the system administrators add."""

    __tablename__ = "groups"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # Chinese, what people read
    name_en: Mapped[str | None] = mapped_column(String(200))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", name="fk_groups_department"), index=True)

    department: Mapped[Department | None] = relationship()

    @property
    def builtin(self) -> bool:
        return self.code in BUILTIN_GROUPS


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    role: Mapped[str] = mapped_column(String(32), default="user")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(64))
    post: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the password was last set (the mlps3 profile's 90-day change counts from here).
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship(foreign_keys=[department_id])
    group_links: Mapped[list[UserGroup]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def groups(self) -> set[str]:
        return {link.group_code for link in self.group_links}


class UserGroup(Base):
    __tablename__ = "user_groups"
    # A group's members (the administration page, notifications to a group) are read by group.
    __table_args__ = (Index("ix_user_groups_group_code", "group_code"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_code: Mapped[str] = mapped_column(ForeignKey("groups.code"), primary_key=True)


class AuthToken(Base):
    """A bearer token or a page session; only the SHA-256 of the secret is stored."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # api | session | pending (password checked, second factor not yet: signs nobody in)
    kind: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    # Wrong second-factor codes sent against a pending sign-in.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The WebAuthn challenge issued to this session or pending sign-in, kept server-side so that
    # it is used once (a signed cookie could be replayed with an old challenge).
    challenge: Mapped[str | None] = mapped_column(String(128))


class Deployment(Base):
    """A set of files deployed together; immutable once written."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    files: Mapped[list[DeploymentFile]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class IdCounter(Base):
    """Ids drawn before their row is written, on SQLite (PostgreSQL draws from the sequence):
    service/instances.py `_new_instance_id`."""

    __tablename__ = "id_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class DeploymentFile(Base):
    __tablename__ = "deployment_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # bpmn | dmn | form
    content: Mapped[str] = mapped_column(Text)


class ProcessDefinition(Base):
    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="", server_default="")
    file: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessInstance(Base):
    __tablename__ = "process_instances"
    __table_args__ = (Index("ix_instances_state_key", "state", "process_key"),
                      Index("ix_instances_department_state", "department_id", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running|completed|cancelled|error
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The engine state: one JSON document, spec by reference (engine/codec.py).
    engine_state: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(16))
    # Optimistic concurrency: every write checks and bumps it.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    active_elements: Mapped[list] = mapped_column(JSON, default=list)
    incidents: Mapped[list] = mapped_column(JSON, default=list)
    waiting_messages: Mapped[list] = mapped_column(JSON, default=list)
    next_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    __mapper_args__ = {"version_id_col": lock_version}


class OpenTask(Base):
    """Projection of the READY user tasks of running instances; task lists read only this."""

    __tablename__ = "open_tasks"
    # "Assigned to me" in page order (service/inbox.py); unassigned tasks are found from their
    # candidates, so they are left out (migration 0012_serving_inbox_indexes says why).
    __table_args__ = (Index("ix_open_tasks_process_element", "process_key", "element_id"),
                      Index("ix_open_tasks_assignee_order", "assignee_id", "due_at", "created_at", "id",
                            sqlite_where=text("assignee_id IS NOT NULL"),
                            postgresql_where=text("assignee_id IS NOT NULL")),
                      # A task's assignment and sort key by its id, from the index alone.
                      Index("ix_open_tasks_page", "id", "assignee_id", "due_at", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the engine's task id
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    process_key: Mapped[str] = mapped_column(String(128), index=True)
    element_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    form: Mapped[str | None] = mapped_column(String(255))
    ui_form: Mapped[str | None] = mapped_column(String(255))
    approval: Mapped[bool] = mapped_column(Boolean, default=False)
    instructions: Mapped[str] = mapped_column(Text, default="")
    instructions_en: Mapped[str | None] = mapped_column(Text)  # the designer's English, when given
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    # When someone took the task (claim); copied to the history row for waiting times (R-WF-4).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    candidates: Mapped[list[TaskCandidate]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class TaskCandidate(Base):
    """Who may take an open task: a user, or every member of a group."""

    __tablename__ = "task_candidates"
    # The tasks offered to a user or a group in page order, from the index alone: each branch of
    # "my tasks" (service/inbox.py) reads its first page and stops (migration 0017_candidate_page_keys).
    __table_args__ = (Index("ix_task_candidates_user_page", "user_id", "due_key", "created_at", "task_id"),
                      Index("ix_task_candidates_group_page", "group_code", "due_key", "created_at", "task_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("open_tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    group_code: Mapped[str | None] = mapped_column(String(64))
    # The task's sort key, copied (its deadline and creation never change). The deadline is NOT NULL,
    # NO_DEADLINE standing for none: both databases then walk (due_key, created_at, task_id) in page
    # order and seek a keyset cursor with one row-value comparison, which a NULL would break (SQLite
    # and PostgreSQL sort NULLs at opposite ends).
    due_key: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @classmethod
    def of(cls, task: OpenTask, **who) -> TaskCandidate:
        """A candidate of `task` (user_id= or group_code=) carrying the task's sort key."""
        if task.created_at is None:
            task.created_at = utcnow()  # now rather than at the flush, so that both rows hold the same moment
        return cls(due_key=task.due_at or NO_DEADLINE, created_at=task.created_at, **who)


# The due_key of a task without a deadline: later than any (due dates are held to the timer horizon).
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)


class InstanceStep(Base):
    """Append-only history of completed elements (who, when, decision, opinion) — R-WF-2, R-SEC-10."""

    __tablename__ = "instance_steps"
    # Element statistics (R-WF-4) and indicators (R-SUP-3) read steps by process version and
    # completion time; docs/architecture.md "Dashboards at scale".
    __table_args__ = (Index("ix_instance_steps_definition_completed", "definition_id", "completed_at", "element_id",
                            "duration_s", "wait_s", "instance_id", "decision"),
                      Index("ix_instance_steps_completed_user", "completed_at", "user_id"),
                      Index("ix_instance_steps_task", "task_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    # The instance's process version, copied so statistics need no join to process_instances.
    definition_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_definitions.id", name="fk_instance_steps_definition"))
    element_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A user task's life: ready (open task created), claimed (if anyone claimed it), completed.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Seconds ready → completed and ready → claimed, fixed when the step is written, so element
    # statistics over a year of history read numbers instead of computing them per row.
    duration_s: Mapped[float | None] = mapped_column(Float)
    wait_s: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(String(16))
    opinion: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)


class AuditEvent(Base):
    """Tamper-evident audit log: each row's MAC covers the previous row's (R-SEC-8, service/audit.py)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    client_addr: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 under key_id; plain SHA-256 if NULL (legacy)
    key_id: Mapped[str | None] = mapped_column(String(32))


class ScheduledJob(Base):
    """Due work: an instance's next timer, a task deadline, a timer start event (R-WF-2, R-SUP-4).

    Workers claim due rows with SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL) inside the transaction
    that does the work, so a row is fired once and a worker that dies leaves it to the next one."""

    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        UniqueConstraint("kind", "ref", name="uq_scheduled_jobs_kind_ref"),
        Index("ix_scheduled_jobs_due", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # timer | deadline | start | archive (daily)
    # What the job is about: an instance id, a task id, or "<process key>:<start element>".
    ref: Mapped[str] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """In-app inbox: new task, returned application, overdue, escalation."""

    __tablename__ = "notifications"
    # By task: a task leaving the inbox marks its notifications read (notifications.done_with).
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),
                      Index("ix_notifications_task", "task_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IndicatorSnapshot(Base):
    """The four indicators of one period as computed at `computed_at` (R-SUP-3): the dashboards
    read these instead of aggregating a year of history per request; service.analytics keeps them
    fresh (docs/architecture.md, "Dashboards at scale")."""

    __tablename__ = "indicator_snapshots"
    __table_args__ = (UniqueConstraint("period_start", "period_end", name="uq_indicator_snapshots_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    figures: Mapped[dict] = mapped_column(JSON)  # {"departments": {code: {…}}, "platform": {…}}
    # {department code: {username: {…}}}: loaded only when asked for (the trend does not need it)
    people: Mapped[dict] = mapped_column(JSON, deferred=True)


class PerformanceRecord(Base):
    """A consequence of an assessment result for a department, or for a person of it (R-SUP-5): a
    commendation (绩效加分 / 荣誉证书), a circulated criticism, a rectification with its deadline,
    or a penalty after a failed re-check. Written by publish_assessment, the penalty by
    record_penalty (the supervision group's decision in issue_rectification, naming that
    instance); the HR office reads and exports them."""

    __tablename__ = "performance_records"
    __table_args__ = (Index("ix_performance_records_period", "period", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # commendation | criticism | rectification | penalty
    period: Mapped[str] = mapped_column(String(32))  # the assessment's period, 2026-Q4
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    # The person the record is about (a commendation the supervisors named them for; the
    # department is then the person's own), None for the department as a whole.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    grade: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")  # what was decided, in Chinese
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The quarterly assessment instance that decided it, and the rectification it started.
    assessment_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    rectification_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

class ProcessEvaluation(Base):
    """A process's monthly evaluation (service/evaluation.py, R-WF-4)."""

    __tablename__ = "process_evaluations"
    __table_args__ = (UniqueConstraint("process_key", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_key: Mapped[str] = mapped_column(String(128), index=True)
    period: Mapped[str] = mapped_column(String(16))  # 2026-11
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[dict] = mapped_column(JSON, default=dict)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_jobs.id", ondelete="SET NULL"))


# The workspace's own tables, registered with the metadata alongside these.
from . import anomaly_models as _anomaly_models  # noqa: E402,F401  (registers the audit findings)
from .identity import models as _identity_models  # noqa: E402,F401  (registers the identity tables)
from .studio import models as _studio_models  # noqa: E402,F401  (registers the studio tables)
from .workspace_models import ApplicationTracking, Substitution, TaskDraft  # noqa: E402,F401
