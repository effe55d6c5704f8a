"""Server validation of a draft, and deploying it as the next version.

The draft is checked by the same loader the deployment uses (engine.loader.load_bundle), so
"valid in the studio" and "deployable" are one judgement; the studio adds one rule of its own:
the diagram's executable process is the model's key, so a department can only deploy its own
processes from the studio.
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from engine.errors import InvalidDiagram
from engine.loader import BPMN_NS, load_bundle, parse_xml

from .. import audit, authority, performers
from .. import definitions as deployments
from ..errors import Conflict, InvalidDiagramError
from ..i18n import translate_problem
from ..models import ProcessDefinition, User
from ..services import SERVICES
from .catalogue import require_editor
from .models import ModelDraft, ProcessModel


def diagram_file(model: ProcessModel) -> str:
    return f"{model.key}.bpmn"


def _problem(file: str | None, element: str | None, message: str, severity: str = "error") -> dict:
    return {"element_id": element, "file": file, "message": message, "severity": severity}


def _key_problems(model: ProcessModel, xml: str) -> list[dict]:
    file = diagram_file(model)
    try:
        root = parse_xml(xml, file)
    except InvalidDiagram:
        return []  # the loader reports it, element-named
    executable = [p.get("id") for p in root.iter(f"{{{BPMN_NS}}}process")
                  if (p.get("isExecutable") or "").lower() == "true"]
    if executable and model.key not in executable:
        first = executable[0]
        return [_problem(file, first, _("The executable process is '%(id)s', but this model's key is '%(key)s'; "
                                         "set the process id to '%(key)s'.", id=first, key=model.key))]
    others = [p for p in executable if p != model.key]
    return [_problem(file, p, _("Process '%(id)s' belongs to no model of this studio; a model deploys one "
                                "executable process.", id=p)) for p in others]


def problems(s: Session, model: ProcessModel, draft: ModelDraft, xml: str | None = None,
             user: User | None = None) -> list[dict]:
    """Every problem of the draft (or of `xml`, unsaved edits), in the user's language; with
    `user`, also the service tasks they may not deploy (service/authority.py)."""
    xml = draft.xml if xml is None else xml
    file = diagram_file(model)
    out: list[dict] = []
    for name, text in draft.forms.items():
        problem = deployments._check_form(text)  # the deployment's own form check
        if problem:
            out.append(_problem(name, None, problem))
    known_forms = set(draft.forms) | set(deployments._latest_forms(s))
    try:
        bundle = load_bundle({file: xml}, draft.dmn, forms=known_forms, services=SERVICES.keys())
    except InvalidDiagram as e:
        out += [_problem(p.file, p.element, translate_problem(p.template, p.params, p.message)) for p in e.problems]
    else:  # lanes naming nobody, and privileged services the deployer may not call
        out += [_problem(p["file"], p["element"], p["message"]) for p in performers.unresolved(s, bundle.processes.values())]
        if user is not None:
            out += [_problem(p["file"], p["element"], p["message"]) for p in authority.deploy_problems(user, bundle)]
    return out + _key_problems(model, xml)




def deploy(s: Session, user: User, model: ProcessModel, version: int) -> ProcessDefinition:
    """Deploy the draft the designer looked at (`version`) as the next version of the process."""
    require_editor(user, model)
    draft = model.draft
    if version != draft.version:
        raise Conflict(_("The draft changed since you opened it (version %(current)s, yours %(yours)s); "
                         "reload it before deploying.", current=draft.version, yours=version))
    found = problems(s, model, draft, user=user)
    if found:
        first = found[0]
        raise InvalidDiagramError(_("The diagram is invalid: %(where)s: %(message)s",
                                    where=first["element_id"] or first["file"] or "", message=first["message"]),
                                  [dict(p, element=p["element_id"]) for p in found])
    files = [(diagram_file(model), draft.xml.encode())]
    files += [(name, text.encode()) for name, text in sorted(draft.forms.items())]
    files += [(name, text.encode()) for name, text in sorted(draft.dmn.items())]
    created = deployments.deploy(s, user, files)
    definition = next(d for d in created if d.key == model.key)
    audit.record(s, "process_model_deployed", "process_model", model.key, actor_id=user.id,
                 detail={"version": definition.version, "draft_version": draft.version})
    return definition
