"""Deploying process definitions: every deploy creates a new immutable version of each process
key it contains; running instances stay on the version they started with (R-WF-1, R-WF-4)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from flask_babel import gettext as _
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import DiagramProblem, InvalidDiagram
from engine.loader import load_bundle

from . import audit, authority, performers, policy, scheduler
from .errors import Forbidden, Invalid, InvalidDiagramError
from .i18n import translate_problem
from .models import Deployment, DeploymentFile, ProcessDefinition, User
from .services import SERVICES

MAX_FILE_BYTES = 5 * 1024 * 1024
log = logging.getLogger("inkless.definitions")


def _kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".bpmn", ".bpmn20.xml", ".xml")):
        return "bpmn"
    if lower.endswith(".dmn"):
        return "dmn"
    if lower.endswith(".json"):
        return "form"
    return None


def _problem_details(problems: list[DiagramProblem]) -> list[dict]:
    return [dict(p.as_dict(), message=translate_problem(p.template, p.params, p.message)) for p in problems]


def deploy(s: Session, user: User | None, files: Iterable[tuple[str, bytes]],
           skip_unchanged: bool = False) -> list[ProcessDefinition]:
    bpmn: dict[str, str] = {}
    dmn: dict[str, str] = {}
    form_files: dict[str, str] = {}
    errors: list[dict] = []
    for raw_name, content in files:
        name = Path(raw_name or "").name
        kind = _kind(name)
        if not name or kind is None:
            errors.append({"file": name or "?", "element": None,
                           "message": _("Unsupported file type; upload .bpmn, .dmn or form .json files.")})
            continue
        if len(content) > MAX_FILE_BYTES:
            errors.append({"file": name, "element": None, "message": _("The upload is too large.")})
            continue
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            errors.append({"file": name, "element": None, "message": _("The file is not UTF-8 text.")})
            continue
        if kind == "form":
            problem = _check_form(text)
            if problem:
                errors.append({"file": name, "element": None, "message": problem})
                continue
            form_files[name] = text
        elif kind == "dmn":
            dmn[name] = text
        else:
            bpmn[name] = text
    if errors:
        raise InvalidDiagramError(_("The deployment has errors."), errors)
    if not bpmn:
        raise Invalid(_("Upload at least one .bpmn file."), [{"field": "files", "message": _("no .bpmn file")}])
    known_forms = set(form_files) | set(_latest_forms(s))
    try:
        bundle = load_bundle(bpmn, dmn, forms=known_forms, services=SERVICES.keys())
    except InvalidDiagram as e:
        details = _problem_details(e.problems)
        first = details[0]
        where = first["element"] or first["file"] or ""
        raise InvalidDiagramError(_("The diagram is invalid: %(where)s: %(message)s", where=where,
                                    message=first["message"]), details) from None
    stored_forms = dict(form_files)
    latest = _latest_forms(s)
    for name in bundle.forms_used - set(form_files):
        stored_forms[name] = latest[name]

    if skip_unchanged and _unchanged(s, bundle, bpmn):
        return []
    _check_performers(s, bundle)
    if user is not None:
        _check_ownership(s, user, list(bundle.processes))
    refused = authority.deploy_problems(user, bundle)
    if refused:
        first = refused[0]
        raise InvalidDiagramError(_("The diagram is invalid: %(where)s: %(message)s", where=first["element"],
                                    message=first["message"]), refused)
    deployment = Deployment(deployed_by=user.id if user else None)
    deployment.files = (
        [DeploymentFile(name=n, kind="bpmn", content=c) for n, c in bpmn.items()]
        + [DeploymentFile(name=n, kind="dmn", content=c) for n, c in dmn.items()]
        + [DeploymentFile(name=n, kind="form", content=c) for n, c in stored_forms.items()]
    )
    s.add(deployment)
    s.flush()
    created = []
    for key, process in bundle.processes.items():
        current = s.scalar(select(func.max(ProcessDefinition.version)).where(ProcessDefinition.key == key)) or 0
        definition = ProcessDefinition(key=key, version=current + 1, name=process.name,
                                       description=process.documentation, category=process.category,
                                       file=process.file,
                                       deployment_id=deployment.id)
        s.add(definition)
        created.append(definition)
        scheduler.schedule_start_timers(s, key, process)
    s.flush()
    audit.record(s, "definitions_deployed", "deployment", deployment.id, actor_id=user.id if user else None,
                 detail={"definitions": [f"{d.key}:{d.version}" for d in created], "files": sorted(bpmn)})
    return created


def _check_performers(s: Session, bundle) -> None:
    """Every lane and `performers` property names groups and users that exist (issue 14, R-WF-1):
    otherwise the step would reach nobody from the first instance on."""
    problems = performers.unresolved(s, bundle.processes.values())
    if problems:
        first = problems[0]
        raise InvalidDiagramError(_("The diagram is invalid: %(where)s: %(message)s", where=first["element"],
                                    message=first["message"]), problems)


def _check_ownership(s: Session, user: User, keys: list[str]) -> None:
    """A department's process changes only by its own designers (R-WF-1): a catalogued process by
    the designers of the department that owns it; one deployed outside the studio by the designers
    of the department that first deployed it; the built-in procedures (first deployed by the
    installer) by those the permission table lets keep them. A new key is anyone's who may deploy."""
    from .studio.catalogue import may_edit
    from .studio.models import ProcessModel

    refused = []
    for key in keys:
        model = s.scalar(select(ProcessModel).where(ProcessModel.key == key))
        if model is not None:
            allowed = may_edit(user, model)
        else:
            first = s.scalar(select(Deployment.deployed_by).join(ProcessDefinition, ProcessDefinition.deployment_id == Deployment.id)
                             .where(ProcessDefinition.key == key).order_by(ProcessDefinition.version).limit(1))
            if first is None and not s.scalar(select(func.count()).where(ProcessDefinition.key == key)):
                continue  # a new process
            owner = s.get(User, first) if first is not None else None
            allowed = (policy.allows(user, "deploy", "builtin_process")
                       or (owner is not None and owner.department_id == user.department_id))
        if not allowed:
            refused.append(key)
    if refused:
        raise Forbidden(_("Only the designers of the department that owns it may deploy a new version of: %(keys)s",
                          keys=", ".join(refused)))


def _check_form(text: str) -> str | None:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        return _("Not valid JSON (line %(line)s): %(error)s", line=e.lineno, error=e.msg)
    if not isinstance(schema, dict):
        return _("A form must be a JSON object.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        return _("Not a valid JSON Schema: %(error)s", error=e.message)
    return None


def _latest_forms(s: Session) -> dict[str, str]:
    """The newest deployed content of every form name."""
    newest = (select(DeploymentFile.name, func.max(DeploymentFile.id).label("id"))
              .where(DeploymentFile.kind == "form").group_by(DeploymentFile.name).subquery())
    rows = s.execute(select(DeploymentFile.name, DeploymentFile.content).join(newest, DeploymentFile.id == newest.c.id))
    return dict(rows.all())


def _unchanged(s: Session, bundle, bpmn: dict[str, str]) -> bool:
    for key, process in bundle.processes.items():
        latest = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                          .order_by(ProcessDefinition.version.desc()).limit(1))
        if latest is None:
            return False
        content = s.scalar(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id == latest.deployment_id, DeploymentFile.name == process.file))
        if content != bpmn[process.file]:
            return False
    return True


def deploy_directory(s: Session, models_dir: Path, forms_dir: Path, user: User | None = None) -> list[ProcessDefinition]:
    """Deploy the built-in models (one deployment per diagram file, forms alongside). A procedure
    whose latest version a person deployed (its designers changed it in the studio) keeps it: the
    installer's file, run again on every upgrade, must not undo their work."""
    forms = [(p.name, p.read_bytes()) for p in sorted(forms_dir.glob("*.json"))]
    created = []
    for path in sorted(models_dir.glob("*.bpmn")):
        if _changed_by_people(s, path.stem):
            log.warning("built-in %s not redeployed: its latest version was deployed by its designers", path.stem)
            continue
        dmns = [(p.name, p.read_bytes()) for p in sorted(models_dir.glob("*.dmn"))]
        created += deploy(s, user, [(path.name, path.read_bytes()), *dmns, *forms], skip_unchanged=True)
    return created


def _changed_by_people(s: Session, key: str) -> bool:
    deployed_by = s.scalar(select(Deployment.deployed_by).join(ProcessDefinition, ProcessDefinition.deployment_id == Deployment.id)
                           .where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc()).limit(1))
    return deployed_by is not None
