"""On whose authority a service acts (issue 13; R-ACC-2, R-ACC-3, R-SEC-7, R-DOC-4).

A service task is the only way a diagram reaches outside its own data, and departments deploy
their own diagrams (R-WF-1). So a diagram may do no more than the one who deployed it: every
service declares what it does and which permission of the table (service/policy.py) it needs,
and three checks hold it to that:

- at deploy: a diagram calling a privileged service is refused (422, naming the service task and
  the service) unless the deployer holds the permission over every department — a service's
  targets come from the diagram's data, so they may lie anywhere. The built-in procedures
  (deployed by the platform itself, `deployed_by` empty) keep theirs;
- at run time: the service asks the same of the instance's definition before it acts, so a
  definition deployed before these checks existed cannot use it either;
- where the service acts on behalf of approvals (the account is created after the department
  head's and the platform's, R-ACC-2), those approvals must be in the instance's history: the
  latest decision at each declared element is "approve", in the declared order, by someone the
  declared performer spec names (service/performers.py, resolved against the service's facts).

A refusal raises `Refused`, which the engine records as a `forbidden` incident on the instance
(counted by the security indicator, R-SUP-3); the service writes nothing before it.
"""
from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.sandbox import ScriptForbidden

from . import performers, policy
from .models import Deployment, InstanceStep, OpenTask, ProcessDefinition, ProcessInstance, User

# What a service does. NONE and NOTICES need no permission; the others name one.
NONE = "none"  # checks, or reads only what the instance's own participants may see
NOTICES = "notices"  # puts notices in inboxes
READS = "reads"  # reads beyond its caller's rights (every department's figures or grants)
ACCOUNTS = "accounts"
PERMISSIONS = "permissions"
DOCUMENTS = "documents"
RECORDS = "records"  # the platform's official records (assessment results)
CONFIGURATION = "configuration"
EFFECTS = {
    NONE: lazy_gettext("checks only"), NOTICES: lazy_gettext("sends notices"),
    READS: lazy_gettext("reads every department's data"), ACCOUNTS: lazy_gettext("creates or deactivates accounts"),
    PERMISSIONS: lazy_gettext("changes permissions"), DOCUMENTS: lazy_gettext("publishes or hands over documents"),
    RECORDS: lazy_gettext("writes official records"), CONFIGURATION: lazy_gettext("changes the configuration"),
}
UNPRIVILEGED = frozenset({NONE, NOTICES})


# A service refusing to act on this instance's authority: the engine's own refusal, so the
# incident is of kind `forbidden` like a sandbox refusal, and counts as a security incident.
Refused = ScriptForbidden


@dataclass(frozen=True)
class Approval:
    """A decision a service acts on: the latest decision at user task `element` is "approve", given
    by someone the performer spec `by` names. `when` names a fact that must be true for this
    approval to count (e.g. only the confidentiality officer's, for a secret document). The
    approval that `grants` decides which roles and groups may be handed out (R-SEC-7)."""

    element: str
    by: str
    when: str | None = None
    grants: bool = False


@dataclass(frozen=True)
class Authority:
    """What a service does (`effect`) and the permission (`action` on `resource`) it needs.

    `relies_on` lists the approvals it acts on, in order; a tuple inside it is a choice (any one
    of them). `facts` turns the service's parameters into what the approvals' performer specs and
    `when` read, from the database rather than from the diagram's data; without it the
    parameters themselves are read."""

    effect: str
    action: str | None = None
    resource: str | None = None
    relies_on: tuple[Approval | tuple[Approval, ...], ...] = ()
    facts: Callable[[Session, dict], dict] | None = None

    def __post_init__(self):
        if self.effect not in EFFECTS:
            raise ValueError(f"unknown effect {self.effect!r}")
        if (self.effect in UNPRIVILEGED) != (self.action is None):
            raise ValueError(f"a service that {self.effect} names {'no' if self.effect in UNPRIVILEGED else 'a'} permission")

    @property
    def privileged(self) -> bool:
        return self.action is not None

    @property
    def permission(self) -> str:
        return f"{self.action} {self.resource}"


CHECKS_ONLY = Authority(NONE)
SENDS_NOTICES = Authority(NOTICES)

AUTHORITIES: dict[str, Authority] = {}

# The approvals the guard verified for the service it is running, for `granted_by`.
_verified: contextvars.ContextVar[dict[str, User]] = contextvars.ContextVar("inkless_verified_approvals")


def holds(user: User, authority: Authority) -> bool:
    """May `user` lend this authority to a diagram: the permission over every department."""
    return not authority.privileged or policy.ALL in policy.scopes(user, authority.action, authority.resource)


# -- deploy -------------------------------------------------------------------------------------

def service_calls(bundle) -> list[tuple[str, str, str]]:
    """(file, element, service) of every service task of a parsed deployment, call activities'
    processes included."""
    seen: dict[tuple[str, str], str] = {}
    for process in bundle.processes.values():
        for spec in (process.spec, *process.subprocess_specs.values()):
            for task_spec in spec.task_specs.values():
                name = getattr(task_spec, "operation_name", None)
                if name and task_spec.bpmn_id:
                    seen.setdefault((spec.file or process.file, task_spec.bpmn_id), name)
    return sorted((file, element, name) for (file, element), name in seen.items())


def deploy_problems(user: User | None, bundle) -> list[dict]:
    """The service tasks `user` may not deploy, as problems naming the element (empty for the
    platform itself, `user` None)."""
    if user is None:
        return []
    problems = []
    for file, element, name in service_calls(bundle):
        authority = AUTHORITIES.get(name)
        if authority is not None and not holds(user, authority):
            problems.append({"file": file, "element": element, "message": _(
                "Service task '%(element)s' calls '%(service)s', which %(effect)s and needs the permission "
                "'%(permission)s' in every department; only the platform's own procedures and those who hold "
                "that permission may deploy it.",
                element=element, service=name, effect=EFFECTS[authority.effect], permission=authority.permission)})
    return problems


# -- run time -----------------------------------------------------------------------------------

def guarded(name: str, authority: Authority, fn: Callable) -> Callable:
    """`fn` behind the run-time checks: the definition's authority, then the approvals."""

    def call(params: dict, context: dict):
        from .services import current_unit  # services registers through this module

        unit = current_unit.get()
        _require_definition(unit, name, authority)
        token = _verified.set(_require_approvals(unit, name, authority, params, context))
        try:
            return fn(params, context)
        finally:
            _verified.reset(token)

    call.__name__, call.__doc__, call.__wrapped__ = fn.__name__, fn.__doc__, fn
    return call


def granted_by() -> list[User]:
    """Who decided the grant the running service makes (its `grants` approvals)."""
    return list(_verified.get({}).values())


def _instance(unit) -> ProcessInstance | None:
    return unit.session.get(ProcessInstance, unit.instance_id) if unit.instance_id else None


def _require_definition(unit, name: str, authority: Authority) -> None:
    s = unit.session
    definition_id = getattr(unit, "definition_id", None)
    if definition_id is None:
        instance = _instance(unit)
        definition_id = instance.definition_id if instance is not None else None
    if definition_id is None:
        raise Refused(_("Service '%(service)s' refused: it runs only inside a process instance.", service=name))
    deployed_by = s.scalar(select(Deployment.deployed_by).join(
        ProcessDefinition, ProcessDefinition.deployment_id == Deployment.id).where(ProcessDefinition.id == definition_id))
    if deployed_by is None:
        return  # the platform's own procedure
    deployer = s.get(User, deployed_by)
    if deployer is None or not deployer.active or not holds(deployer, authority):
        raise Refused(_(
            "Service '%(service)s' refused: this process was deployed by %(user)s, who does not hold the permission "
            "'%(permission)s' in every department.",
            service=name, user=deployer.username if deployer else "?", permission=authority.permission))


def _require_approvals(unit, name: str, authority: Authority, params: dict, context: dict) -> dict[str, User]:
    if not authority.relies_on:
        return {}
    s = unit.session
    facts = authority.facts(s, params) if authority.facts else dict(params)
    instance = _instance(unit)
    initiator = s.get(User, instance.started_by) if instance is not None and instance.started_by else None
    actor = s.get(User, unit.actor_id) if unit.actor_id else None
    elements = {a.element for item in authority.relies_on for a in _choices(item)}
    latest = _latest_decisions(s, unit.instance_id, elements)
    granting: dict[str, User] = {}
    after = 0.0
    for item in authority.relies_on:
        applicable = [a for a in _choices(item) if a.when is None or facts.get(a.when)]
        found = [(order, approver, a) for a in applicable
                 for order, approver in [_approval(s, a, latest, facts, initiator, actor, context, unit.instance_id)]
                 if approver is not None and order > after]
        if not found:
            wanted = applicable or list(_choices(item))
            raise Refused(_(
                "Service '%(service)s' refused: it acts only after the approval at '%(element)s' by %(by)s, "
                "which this instance does not have.",
                service=name, element=" / ".join(a.element for a in wanted),
                by=" / ".join(a.by for a in wanted)))
        after, approver, approval = max(found, key=lambda f: f[0])
        if approval.grants:
            granting[approval.element] = approver
    return granting


def _choices(item: Approval | tuple[Approval, ...]) -> tuple[Approval, ...]:
    return item if isinstance(item, tuple) else (item,)


def _latest_decisions(s: Session, instance_id: int | None, elements: Iterable[str]) -> dict[str, InstanceStep]:
    rows = s.scalars(select(InstanceStep).where(InstanceStep.instance_id == instance_id,
                                                 InstanceStep.element_id.in_(sorted(elements)))
                     .order_by(InstanceStep.id)) if instance_id else []
    return {row.element_id: row for row in rows}


def _approval(s: Session, approval: Approval, latest: dict[str, InstanceStep], facts: dict, initiator: User | None,
              actor: User | None, context: dict, instance_id: int | None) -> tuple[float, User | None]:
    """(order, approver) of the latest decision at the element if it is a valid approval."""
    entitled = performers.resolve(s, approval.by, facts, initiator)
    # The approval completed in this very request is not in the history yet (it is written when
    # the unit ends): it is the element's open task, being completed by the actor.
    if actor is not None and context.get("decision") == "approve":
        for task in s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id,
                                                      OpenTask.element_id == approval.element)):
            if task.approval and policy.allows(actor, "complete", "task", task) and _is_entitled(actor, entitled):
                return math.inf, actor
    step = latest.get(approval.element)
    if step is None or step.decision != "approve" or step.user_id is None:
        return 0.0, None
    approver = s.get(User, step.user_id)
    if approver is None or not _is_entitled(approver, entitled):
        return 0.0, None
    return float(step.id), approver


def _is_entitled(user: User, entitled: performers.Candidates) -> bool:
    return user.active and (user.id in entitled.users or bool(entitled.groups & user.groups))


def table() -> list[dict]:
    """Every service with what it does and the permission it needs (GET /api/v1/policy, the docs)."""
    from . import services  # noqa: F401 - importing it registers every service

    rows = []
    for name in sorted(AUTHORITIES):
        a = AUTHORITIES[name]
        rows.append({"service": name, "effect": a.effect, "action": a.action, "resource": a.resource,
                     "relies_on": [" | ".join(f"{c.element} ({c.by}{', ' + c.when if c.when else ''})"
                                              for c in _choices(item)) for item in a.relies_on]})
    return rows
