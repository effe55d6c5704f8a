"""Services of file_publication.bpmn: check a submission, publish the reviewed version (R-DOC-4).

The diagram decides who reviews (department head, then the platform management department or,
for 秘密 and above, the confidentiality officer); these services only check and act, inside the
step's transaction.
"""
from __future__ import annotations

from ..documents import sharing
from ..models import ProcessInstance, User
from ..services import current_unit, service


@service("check_publication")
def check_publication(params: dict, context: dict) -> dict:
    """May the author submit this document, to this audience? Returns {ok, problem, title,
    security_level, security_rank, department, version, …} for the gateways and reviewers."""
    unit = current_unit.get()
    s = unit.session
    instance = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    author = s.get(User, instance.started_by) if instance is not None and instance.started_by else None
    return sharing.check_publication(s, author, unit.instance_id, params.get("document_id"), params.get("audience"))


@service("publish_document")
def publish_document(params: dict, context: dict) -> dict:
    """Publish the reviewed version to its audience; {published: false, problem} if it changed."""
    unit = current_unit.get()
    return sharing.publish(unit.session, unit.actor_id, unit.instance_id, params.get("document_id"),
                           params.get("version"), params.get("audience"))
