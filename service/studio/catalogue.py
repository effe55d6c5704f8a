"""The process catalogue: who may see and change a model, creating one, saving its draft.

A model belongs to a department. Its designers (members of the `designer` group in that
department) and system administrators change it; any designer or system administrator may read
the catalogue, so a department can learn from another's processes without touching them.

Every deployed process is in the catalogue (R-WF-1: departments optimise their own procedures,
the regulation's among them). A process deployed without the studio belongs to the department
of whoever first deployed it; the built-in procedures, which the installer deployed, to the
platform management department. Until its first change such a process is listed from its latest
deployed version (its draft is that version), so reading the catalogue writes nothing and an
organisation set up after the installer deployed the procedures still finds them owned; the
first change stores it, as it stood, and from then on it is a model like any other.
"""
from __future__ import annotations

import json
import re
from xml.sax.saxutils import quoteattr

from flask import current_app
from flask_babel import gettext as _
from flask_babel import pgettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import InvalidDiagram
from engine.loader import dmn_problems, parse_xml
from engine.validation import NS

from .. import audit, policy
from ..bounds import int_arg
from ..errors import Conflict, Forbidden, Invalid, InvalidDiagramError, NotFound
from ..hierarchy import platform_department
from ..i18n import translate_problem
from ..models import Department, Deployment, DeploymentFile, Group, ProcessDefinition, User, utcnow
from .models import ModelDraft, ProcessModel

# A BPMN process id is an XML NCName; keep keys to the portable, URL-safe part of it.
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
MAX_DRAFT_BYTES = 5 * 1024 * 1024


def is_designer(user: User) -> bool:
    """May use the studio at all: the permission table grants `edit process_model` somewhere."""
    return policy.widest(user, "edit", "process_model") is not None


def may_edit(user: User, model: ProcessModel) -> bool:
    return policy.allows(user, "edit", "process_model", model)


def require_designer(user: User) -> User:
    if not is_designer(user):
        raise Forbidden(_("Only process designers may use the studio."))
    return user


def require_editor(user: User, model: ProcessModel) -> User:
    if not may_edit(user, model):
        raise Forbidden(_("Only designers of the department that owns '%(name)s' may change it.", name=model.name))
    return user


def _may_start(user: User, model: ProcessModel) -> bool:
    groups = set(model.starters.get("groups") or [])
    departments = set(model.starters.get("departments") or [])
    if not groups and not departments or user.role == "system_admin":
        return True
    return bool(groups & user.groups) or user.department.code in departments


def _policy_allows_start(user: User, key: str) -> bool:
    """A process the permission table names (`start on quarterly_assessment`) is started only by
    those its rows admit; the diagram checks the same row again (its "无权发起" end), for a start
    that did not come through here."""
    return key not in policy.STARTED_BY_RULE or policy.allows(user, "start", key)


def may_start(s: Session, user: User, key: str) -> bool:
    """Who may start a process by hand: the permission table's `start` rows where they name the
    process, and the model's starters (groups or departments); a process outside the catalogue,
    or one that names nobody, is open to everyone."""
    return may_start_as_modelled(user, key, s.scalar(select(ProcessModel).where(ProcessModel.key == key)))


def may_start_as_modelled(user: User, key: str, model: ProcessModel | None) -> bool:
    """`may_start` with the process's model (None: not in the catalogue) already read."""
    return _policy_allows_start(user, key) and (model is None or _may_start(user, model))


def not_startable(s: Session, user: User) -> set[str]:
    """Keys the user may not start (for lists of what can be started)."""
    refused = {key for key in policy.STARTED_BY_RULE if not _policy_allows_start(user, key)}
    return refused | {m.key for m in s.scalars(select(ProcessModel)) if not _may_start(user, m)}


def models(s: Session) -> list[ProcessModel]:
    """Every model, and every deployed process not changed in the studio yet (as it is deployed)."""
    stored = list(s.scalars(select(ProcessModel)))
    known = {m.key for m in stored}
    platform = platform_department(s)
    listed = [_as_deployed(s, key, platform) for key in s.scalars(select(ProcessDefinition.key).distinct())
              if key not in known]
    return sorted(stored + [m for m in listed if m is not None], key=lambda m: (m.category, m.key))


def get(s: Session, key: str, for_update: bool = False, user: User | None = None) -> ProcessModel:
    """The model `key`. With `for_update` (to change it) it is locked, and a deployed process not
    yet in the catalogue's tables is stored first, `user` recorded as the one who took it in."""
    query = select(ProcessModel).where(ProcessModel.key == key)
    if for_update and s.bind.dialect.name == "postgresql":
        # OF: the draft is eagerly outer-joined, and PostgreSQL refuses to lock the nullable side.
        query = query.with_for_update(of=ProcessModel)
    model = s.scalar(query)
    if model is None:
        model = _as_deployed(s, key, platform_department(s))
        if model is None:
            raise NotFound(_("Process model '%(key)s' does not exist.", key=key))
        if for_update:
            model = _store(s, model, user, query)
    return model


def _owner(s: Session, key: str, platform: Department | None) -> Department | None:
    """Who owns a process deployed outside the studio: the department of whoever deployed its
    first version; the installer's (the built-in procedures), the platform management department."""
    first = s.scalar(select(Deployment.deployed_by).join(ProcessDefinition, ProcessDefinition.deployment_id == Deployment.id)
                     .where(ProcessDefinition.key == key).order_by(ProcessDefinition.version).limit(1))
    deployer = s.get(User, first) if first is not None else None
    return deployer.department if deployer is not None else platform


def _as_deployed(s: Session, key: str, platform: Department | None,
                 department: Department | None = None) -> ProcessModel | None:
    """A deployed process as a model not stored yet: its latest version is the draft. None when
    `key` was never deployed, or when no department can own it yet (no organisation)."""
    latest = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                      .order_by(ProcessDefinition.version.desc()).limit(1))
    if latest is None:
        return None
    department = department or _owner(s, key, platform)
    if department is None:
        return None
    deployment = s.get(Deployment, latest.deployment_id)
    xml, forms, dmn = _deployed_files(s, latest)
    model = ProcessModel(key=key, name=(latest.name or key)[:255], description=latest.description or "", category="",
                         department_id=department.id, department=department, starters={"groups": [], "departments": []})
    scenarios = _shipped_scenarios(key) if deployment.deployed_by is None else {}
    model.draft = ModelDraft(xml=xml, forms=forms, dmn=dmn, scenarios=scenarios, version=1,
                             updated_at=deployment.deployed_at)
    return model


def _store(s: Session, model: ProcessModel, user: User | None, query) -> ProcessModel:
    model.created_by = model.draft.updated_by = user.id if user else None
    try:
        with s.begin_nested():
            s.add(model)
    except IntegrityError:
        # Someone else stored it in the meantime: change theirs (the draft version tells stale edits).
        return s.scalar(query)
    audit.record(s, "process_model_created", "process_model", model.key, actor_id=model.created_by,
                 detail={"department_id": model.department_id, "adopted": True})
    return model


def _shipped_scenarios(key: str) -> dict:
    """The scenario tests a built-in procedure ships with (process_models/<key>/tests), for "try it"."""
    folder = current_app.config["INKLESS"].process_models_dir / key / "tests"
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            scenario = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(scenario, dict):
            out[path.stem] = scenario
    return out


FORM_PROPERTIES = ("formJsonSchemaFilename", "formUiSchemaFilename")


def form_names(xml: str, properties: tuple[str, ...] = FORM_PROPERTIES) -> set[str]:
    """The form files a diagram's tasks name (empty for a diagram that does not parse)."""
    try:
        root = parse_xml(xml, "draft.bpmn")
    except InvalidDiagram:
        return set()
    names = {p.get("value", "").strip() for p in root.iterfind(".//spiffworkflow:property", NS)
             if p.get("name") in properties}
    return names - {""}


def blank_diagram(key: str, name: str) -> str:
    """A new model: a named start event flowing to a named end event, with their shapes, so the
    modeler opens on a diagram that passes bpmnlint and the server's check and is there to extend."""
    start, end = quoteattr(pgettext("diagram", "Start")), quoteattr(pgettext("diagram", "End"))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="definitions_{key}" targetNamespace="http://inkless/bpmn">
  <bpmn:process id="{key}" name={quoteattr(name)} isExecutable="true">
    <bpmn:startEvent id="start" name={start}>
      <bpmn:outgoing>flow_start_end</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:endEvent id="end" name={end}>
      <bpmn:incoming>flow_start_end</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="flow_start_end" sourceRef="start" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram_{key}">
    <bpmndi:BPMNPlane id="plane_{key}" bpmnElement="{key}">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="180" y="160" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end">
        <dc:Bounds x="420" y="160" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="flow_start_end_di" bpmnElement="flow_start_end">
        <di:waypoint x="216" y="178" />
        <di:waypoint x="420" y="178" />
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def _deployed_files(s: Session, definition: ProcessDefinition) -> tuple[str, dict, dict]:
    """The diagram of a deployed version, and the forms and decision tables it uses (a built-in
    deployment carries every form and table of the platform; the draft needs only its own)."""
    in_deployment = DeploymentFile.deployment_id == definition.deployment_id
    xml = s.scalar(select(DeploymentFile.content).where(in_deployment, DeploymentFile.name == definition.file))
    forms = dict(s.execute(select(DeploymentFile.name, DeploymentFile.content).where(
        in_deployment, DeploymentFile.kind == "form", DeploymentFile.name.in_(form_names(xml)))).all())
    dmn = dict(s.execute(select(DeploymentFile.name, DeploymentFile.content).where(
        in_deployment, DeploymentFile.kind == "dmn")).all())
    return xml, forms, _tables_called(xml, dmn)


def _tables_called(xml: str, tables: dict[str, str]) -> dict[str, str]:
    """The decision tables whose decisions the diagram's business rule tasks call (a built-in
    deployment carries every table of the platform)."""
    try:
        called = {e.text.strip() for e in parse_xml(xml, "draft.bpmn").iterfind(".//spiffworkflow:calledDecisionId", NS)
                  if e.text}
    except InvalidDiagram:
        return {}
    kept = {}
    for name, text in tables.items():
        try:
            decisions = {d.get("id") for d in parse_xml(text, name).iter("{*}decision")}
        except InvalidDiagram:
            continue
        if decisions & called:
            kept[name] = text
    return kept


def _starters(s: Session, value) -> dict:
    value = value or {}
    groups = sorted({str(g) for g in value.get("groups") or []})
    departments = sorted({str(d) for d in value.get("departments") or []})
    known_groups = set(s.scalars(select(Group.code)))
    known_departments = set(s.scalars(select(Department.code)))
    errors = [{"field": "starters.groups", "message": _("unknown group '%(code)s'", code=g)}
              for g in groups if g not in known_groups]
    errors += [{"field": "starters.departments", "message": _("unknown department '%(code)s'", code=d)}
               for d in departments if d not in known_departments]
    if errors:
        raise Invalid(_("Who may start the process is invalid."), errors)
    return {"groups": groups, "departments": departments}


def create(s: Session, user: User, fields: dict) -> ProcessModel:
    """A new model owned by the creator's department (a system administrator may name another).
    A deployed process is in the catalogue already; a system administrator may still take it in
    for another department than the one that owns it (naming `department`)."""
    require_designer(user)
    key = (fields.get("key") or "").strip()
    if not KEY.match(key):
        raise Invalid(_("The key is invalid."), [{"field": "key", "message": _(
            "use letters, digits, '_' or '-', starting with a letter or '_' (at most 128)")}])
    department = None
    if fields.get("department") and user.role == "system_admin":
        department = s.scalar(select(Department).where(Department.code == fields["department"]))
        if department is None:
            raise Invalid(_("The department does not exist."), [{"field": "department", "message": _("unknown department")}])
    exists = Conflict(_("A process model with key '%(key)s' already exists.", key=key))
    if s.scalar(select(ProcessModel.id).where(ProcessModel.key == key)) is not None:
        raise exists
    name = (fields.get("name") or "").strip() or key
    deployed = s.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == key).limit(1)) is not None
    if deployed:
        if department is None:
            raise exists  # listed, owned by the department that deployed it: open it there
        model = _as_deployed(s, key, None, department)
    else:
        model = ProcessModel(key=key, department_id=(department or user.department).id)
        model.draft = ModelDraft(xml=blank_diagram(key, name), forms={}, dmn={}, scenarios={}, version=1)
    model.name = name[:255] if fields.get("name") else model.name or name[:255]
    model.description = fields.get("description") or model.description or ""
    model.category = (fields.get("category") or "")[:64]
    model.starters = _starters(s, fields.get("starters"))
    model.created_by = model.draft.updated_by = user.id
    s.add(model)
    s.flush()
    audit.record(s, "process_model_created", "process_model", model.key, actor_id=user.id,
                 detail={"department_id": model.department_id, "adopted": deployed})
    return model


def update(s: Session, user: User, model: ProcessModel, fields: dict) -> ProcessModel:
    require_editor(user, model)
    for name in ("name", "description", "category"):
        if fields.get(name) is not None:
            setattr(model, name, str(fields[name])[:255 if name == "name" else 64 if name == "category" else None])
    if fields.get("starters") is not None:
        model.starters = _starters(s, fields["starters"])
    audit.record(s, "process_model_changed", "process_model", model.key, actor_id=user.id,
                 detail={k: v for k, v in fields.items() if k in ("name", "category", "starters")})
    return model


def _check_texts(field: str, value) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Invalid(_("The draft is invalid."), [{"field": field, "message": _("must map file names to text")}])
    for name in value:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise Invalid(_("The draft is invalid."), [{"field": field, "message": _(
                "'%(name)s' is not a plain file name", name=name)}])
    return value


def _check_tables(saved: dict[str, str], tables: dict[str, str]) -> None:
    """A decision table the engine cannot read is refused when saved (the editor shows where), not
    first at deploy; tables unchanged since the last save are not judged again."""
    changed = {name: text for name, text in tables.items() if saved.get(name) != text}
    found = dmn_problems(changed) if changed else []
    if found:
        details = [{"field": "dmn", "file": p.file, "element": p.element, "element_id": p.element,
                    "message": translate_problem(p.template, p.params, p.message)} for p in found]
        first = details[0]
        raise InvalidDiagramError(_("The decision table is invalid: %(where)s: %(message)s",
                                    where=first["element"] or first["file"] or "", message=first["message"]), details)


def save_draft(s: Session, user: User, model: ProcessModel, version: int, changes: dict) -> ModelDraft:
    """Save what changed; `version` is the draft version the editor started from (409 if stale)."""
    require_editor(user, model)
    draft = model.draft
    if version != draft.version:
        raise Conflict(_("Someone else saved this draft in the meantime (version %(current)s, yours %(yours)s); "
                         "reload it before saving.", current=draft.version, yours=version))
    if changes.get("xml") is not None:
        draft.xml = changes["xml"]
    if changes.get("dmn") is not None:
        _check_tables(draft.dmn, _check_texts("dmn", changes["dmn"]))
    for field in ("forms", "dmn"):
        if changes.get(field) is not None:
            setattr(draft, field, dict(_check_texts(field, changes[field])))
    if changes.get("scenarios") is not None:
        scenarios = changes["scenarios"]
        if not isinstance(scenarios, dict) or not all(isinstance(v, dict) for v in scenarios.values()):
            raise Invalid(_("The draft is invalid."), [{"field": "scenarios", "message": _("must map names to scenarios")}])
        draft.scenarios = dict(scenarios)
    size = len(draft.xml.encode()) + sum(len(v.encode()) for f in (draft.forms, draft.dmn) for v in f.values())
    if size > MAX_DRAFT_BYTES:
        raise Invalid(_("The upload is too large."), [{"field": "xml", "message": _("The upload is too large.")}])
    draft.version += 1
    draft.updated_by = user.id
    draft.updated_at = utcnow()
    s.flush()
    return draft


def diagram(s: Session, model: ProcessModel, which: str | None) -> str:
    """The diagram of deployed version `which` (a number), or of the draft (None, "" or "draft")."""
    if which in (None, "", "draft"):
        return model.draft.xml
    try:
        number = int_arg(which)
    except ValueError:
        raise Invalid(_("The version is invalid."), [{"field": "version", "message": _("a number or 'draft'")}]) from None
    definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == model.key,
                                                          ProcessDefinition.version == number))
    if definition is None:
        raise NotFound(_("Version %(v)s of '%(key)s' does not exist.", v=number, key=model.key))
    return s.scalar(select(DeploymentFile.content).where(DeploymentFile.deployment_id == definition.deployment_id,
                                                         DeploymentFile.name == definition.file))
