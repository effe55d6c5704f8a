"""An instance's diagram on a page (issue 6): the BPMN XML it runs, and which elements to mark.

The XML is served by each page area's own route, after that area's visibility check (signed-in
users: `instances.visible_instance`; applicants: their tracking code); static/src/viewer.js draws it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape, unescape

from flask import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import performers
from ..api import views
from ..models import DeploymentFile, ProcessDefinition, ProcessInstance


@dataclass
class Marks:
    current: str
    completed: str
    incidents: str


def xml(s: Session, row: ProcessInstance) -> Response:
    definition = s.get(ProcessDefinition, row.definition_id)
    text = s.scalar(select(DeploymentFile.content).where(
        DeploymentFile.deployment_id == definition.deployment_id, DeploymentFile.name == definition.file))
    return Response(_readable_lanes(text or ""), mimetype="application/xml")


_LANE_NAME = re.compile(r'(<(?:[\w-]+:)?lane\b[^>]*?\bname=")([^"]*)(")')


def _readable_lanes(text: str) -> str:
    """Lanes drawn with their names only: the performer spec in a lane's name is for the engine
    (service/performers.py), not for the people reading the diagram."""
    return _LANE_NAME.sub(lambda m: m.group(1) + escape(performers.lane_label(unescape(m.group(2))), quote=True)
                          + m.group(3), text)


def marks(s: Session, row: ProcessInstance) -> Marks:
    """Space-separated element ids: where it waits now, what it passed, where it failed."""
    current = sorted({a["element_id"] for a in row.active_elements or []})
    incidents = sorted({i["element"] for i in row.incidents or [] if i.get("element")}) if row.state == "error" else []
    return Marks(current=" ".join(current), completed=" ".join(views.completed_elements(s, row.id)),
                 incidents=" ".join(incidents))
