"""Services of file_publication.bpmn: check a submission, publish the reviewed version (R-DOC-4).

The diagram decides who reviews (department head, then the platform management department or,
for 秘密 and above, the confidentiality officer); these services only check and act, inside the
step's transaction.
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..authority import DOCUMENTS, Approval, Authority, Refused
from ..documents import sharing
from ..documents.models import SECRET, Document, DocumentPublication
from ..models import Department, ProcessInstance, User
from ..services import current_unit, service


def _publication_facts(s: Session, params: dict) -> dict:
    """What the reviews of a publication are checked against: the document itself, not the diagram's data."""
    document = s.get(Document, int(params["document_id"])) if str(params.get("document_id") or "").isdigit() else None
    if document is None:
        return {}
    department = s.get(Department, document.department_id)
    return {"document_department": department.code if department else None,
            "secret": document.security_level >= SECRET, "open": document.security_level < SECRET}


# The reviews of file_publication.bpmn (R-DOC-4): the head of the document's department, then the
# platform management department, or for 秘密 and above the confidentiality officer.
PUBLICATION = Authority(DOCUMENTS, "publish", "document", facts=_publication_facts, relies_on=(
    Approval("dept_head_review", "dept_head:document_department"),
    (Approval("platform_review", "platform_admin", when="open"),
     Approval("secrecy_review", "group:confidentiality_officer", when="secret")),
))


# It opens the document to the reviewers the diagram names while their task is open.
@service("check_publication", authority=Authority(DOCUMENTS, "publish", "document"))
def check_publication(params: dict, context: dict) -> dict:
    """May the author submit this document, to this audience? Returns {ok, problem, title,
    security_level, security_rank, department, version, …} for the gateways and reviewers."""
    unit = current_unit.get()
    s = unit.session
    instance = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    author = s.get(User, instance.started_by) if instance is not None and instance.started_by else None
    return sharing.check_publication(s, author, unit.instance_id, params.get("document_id"), params.get("audience"))


@service("publish_document", authority=PUBLICATION)
def publish_document(params: dict, context: dict) -> dict:
    """Publish the reviewed version to its audience; {published: false, problem} if it changed.
    Only what this instance's submission recorded (check_publication) is published."""
    unit = current_unit.get()
    submitted = unit.session.scalar(select(DocumentPublication).where(DocumentPublication.instance_id == unit.instance_id))
    if submitted is None or (submitted.document_id, submitted.version_number, submitted.audience) != (
            _int(params.get("document_id")), _int(params.get("version")), params.get("audience")):
        raise Refused(_("Service '%(service)s' refused: this instance submitted no such document, version and "
                        "audience for publication.", service="publish_document"))
    return sharing.publish(unit.session, unit.actor_id, unit.instance_id, params.get("document_id"),
                           params.get("version"), params.get("audience"))


def _int(value) -> int | None:
    return int(value) if str(value or "").isdigit() else None
