"""The naive stack's floor (issue 16): the least a BPMN service on this stack does per completion.

Flask, SQLAlchemy Core, SpiffWorkflow's stock serializer (the whole workflow as JSON, spec
included, read and written on every request), one projection row per open task and one audit row
per change, in one transaction. No sign-in beyond a fixed bearer token, no forms, no permissions,
no history table, no isolation of scripts. bench/side_by_side.py serves it under gunicorn (one
`gthread` worker, as `inkless serve` runs each web process) beside Inkless and drives both with
the same client, so the ratio between them says what Inkless's extra work costs.

    FLOOR_BPMN=bench/loop.bpmn:bench/five_step.bpmn DATABASE_URL=sqlite:////tmp/floor.db \
        gunicorn -k gthread -w 1 --threads 8 'bench.floor_app:app'

Routes: POST /start {"process_key"} → {"id"}; GET /tasks?instance_id= → {"items": [{"id"}]};
POST /tasks/<task id>/complete {"data"} → {"id", "state"}.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone

from flask import Flask, abort, jsonify, request
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)

TOKEN = "floor-token"

metadata = MetaData()
instances = Table("floor_instances", metadata, Column("id", Integer, primary_key=True),
                  Column("process_key", String(64)), Column("state", String(16)), Column("workflow", Text))
open_tasks = Table("floor_open_tasks", metadata, Column("id", String(36), primary_key=True),
                   Column("instance_id", Integer, index=True), Column("name", String(200)))
audit = Table("floor_audit", metadata, Column("id", Integer, primary_key=True), Column("instance_id", Integer),
              Column("event", String(32)), Column("at", DateTime(timezone=True)))


def _specs() -> dict:
    parser = SpiffBpmnParser()
    for path in os.environ["FLOOR_BPMN"].split(os.pathsep):
        parser.add_bpmn_file(path)
    return {key: parser.get_spec(key) for key in parser.get_process_ids()}


def create_app() -> Flask:
    app = Flask(__name__)
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=8)
    if engine.dialect.name == "sqlite":
        # The same durability settings as Inkless (service/db.py), so the two differ only in work.
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
    metadata.create_all(engine)
    specs = _specs()
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    @app.before_request
    def _token():
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            abort(401)

    def _save(conn, instance_id: int, workflow: BpmnWorkflow, event: str) -> str:
        state = "completed" if workflow.completed else "running"
        conn.execute(update(instances).where(instances.c.id == instance_id)
                     .values(state=state, workflow=json.dumps(serializer.to_dict(workflow))))
        conn.execute(delete(open_tasks).where(open_tasks.c.instance_id == instance_id))
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if ready:
            conn.execute(insert(open_tasks), [{"id": str(t.id), "instance_id": instance_id, "name": t.task_spec.bpmn_name}
                                              for t in ready])
        conn.execute(insert(audit).values(instance_id=instance_id, event=event, at=datetime.now(timezone.utc)))
        return state

    @app.post("/start")
    def start():
        key = (request.get_json(silent=True) or {}).get("process_key")
        if key not in specs:
            abort(404)
        workflow = BpmnWorkflow(specs[key])
        workflow.do_engine_steps()
        with engine.begin() as conn:
            instance_id = conn.execute(insert(instances).values(process_key=key, state="running", workflow="")
                                       ).inserted_primary_key[0]
            state = _save(conn, instance_id, workflow, "start")
        return jsonify(id=instance_id, state=state), 201

    @app.get("/tasks")
    def tasks():
        with engine.connect() as conn:
            rows = conn.execute(select(open_tasks.c.id, open_tasks.c.name)
                                .where(open_tasks.c.instance_id == request.args.get("instance_id", type=int))).all()
        return jsonify(items=[{"id": r.id, "name": r.name} for r in rows])

    @app.post("/tasks/<task_id>/complete")
    def complete(task_id: str):
        data = (request.get_json(silent=True) or {}).get("data") or {}
        with engine.begin() as conn:
            row = conn.execute(select(open_tasks.c.instance_id).where(open_tasks.c.id == task_id)).first()
            if row is None:
                abort(404)
            instance_id = row.instance_id
            # The row lock a real service takes so that two completions of one instance serialise.
            stored = conn.execute(select(instances.c.workflow).where(instances.c.id == instance_id)
                                  .with_for_update()).scalar_one()
            workflow = serializer.from_dict(json.loads(stored))
            task = workflow.get_task_from_id(uuid.UUID(task_id))
            task.set_data(**data)
            task.run()
            workflow.do_engine_steps()
            state = _save(conn, instance_id, workflow, "complete")
        return jsonify(id=instance_id, state=state)

    return app


app = create_app() if "FLOOR_BPMN" in os.environ else None
