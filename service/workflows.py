"""The service's side of the engine: parsed deployments (cached, immutable) and the script engine
with the functions the service offers to diagrams."""
from __future__ import annotations

import threading
from collections import OrderedDict

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.isolation import shared_pool
from engine.loader import Bundle, load_bundle
from engine.sandbox import make_script_engine

from .models import Deployment, ProcessDefinition


class _DeploymentCache:
    """Parsed deployments by id. A deployment never changes, so entries never go stale."""

    def __init__(self, size: int = 128):
        self._items: OrderedDict[int, Bundle] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, s: Session, deployment_id: int) -> Bundle:
        with self._lock:
            if deployment_id in self._items:
                self._items.move_to_end(deployment_id)
                return self._items[deployment_id]
        deployment = s.get(Deployment, deployment_id)
        bundle = bundle_from_files(deployment.files, validate=False)
        with self._lock:
            self._items[deployment_id] = bundle
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return bundle




def bundle_from_files(files, validate: bool = True, forms=None, services=None) -> Bundle:
    bpmn = {f.name: f.content for f in files if f.kind == "bpmn"}
    dmn = {f.name: f.content for f in files if f.kind == "dmn"}
    if not validate:
        return load_bundle(bpmn, dmn)
    return load_bundle(bpmn, dmn, forms=forms, services=services)


def deployment_of(s: Session, definition_id: int) -> int:
    """The deployment a process definition belongs to. Definitions are never edited or deleted,
    so the answer is remembered per app: loading an instance then needs no definition query."""
    known = current_app.extensions.setdefault("inkless.definition_deployments", {})
    if definition_id not in known:
        known[definition_id] = s.scalar(select(ProcessDefinition.deployment_id)
                                        .where(ProcessDefinition.id == definition_id))
    return known[definition_id]


def definition_name(s: Session, definition_id: int) -> str:
    """A process definition's name (its key when it has none), remembered per app like
    `deployment_of`: a notification names the request without a definition query."""
    known = current_app.extensions.setdefault("inkless.definition_names", {})
    if definition_id not in known:
        name, key = s.execute(select(ProcessDefinition.name, ProcessDefinition.key)
                              .where(ProcessDefinition.id == definition_id)).one()
        known[definition_id] = name or key
    return known[definition_id]


def process_for(s: Session, deployment_id: int, key: str):
    # Per app: deployment ids are only unique within one database.
    cache = current_app.extensions.setdefault("inkless.deployments", _DeploymentCache())
    return cache.get(s, deployment_id).processes[key]


_engines: dict[tuple, object] = {}


def script_engine():
    """One script engine per set of limits; it holds no per-instance state. Designer code runs in
    this process's pool of worker processes (engine/isolation.py), sized by the configuration."""
    from .services import HELPERS, SERVICES

    cfg = current_app.config["INKLESS"]
    key = (cfg.script_time_limit, cfg.script_memory_limit, cfg.script_result_limit, cfg.script_workers,
           cfg.script_worker_wait)
    if key not in _engines:
        pool = shared_pool(cfg.script_memory_limit, cfg.script_workers, cfg.script_worker_wait)
        pool.warm(1)  # the first script of this process need not wait for a worker to start
        _engines[key] = make_script_engine(helpers=HELPERS, services=SERVICES, time_limit=cfg.script_time_limit,
                                           memory_limit=cfg.script_memory_limit,
                                           result_limit=cfg.script_result_limit, pool=pool)
    return _engines[key]
