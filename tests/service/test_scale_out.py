"""Scale-out (issue 16, R-OPS-1, R-WF-2): two web processes and two workers share one database —
PostgreSQL in production, whichever the suite runs on here. Four clients start and complete
approvals through both web processes at once; each approval then waits on a timer the workers
fire. No request fails, every instance ends, and no timer fires twice."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from sqlalchemy import func, select

from service import definitions
from service.models import InstanceStep, ProcessInstance
from tests.conftest import PASSWORD, subprocess_env
from tests.service.test_serving import Gunicorn

KEY = "scale_approval"
CLIENTS = 4
PER_CLIENT = 6

DIAGRAM = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{KEY}" targetNamespace="http://inkless">
  <bpmn:process id="{KEY}" name="并发审批" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="approve" name="审批">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>请审批</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:intermediateCatchEvent id="cool_off" name="冷静期">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition id="td_{KEY}"><bpmn:timeDuration>"PT1S"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="cool_off" />
    <bpmn:sequenceFlow id="f3" sourceRef="cool_off" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def _call(port: int, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_two_web_processes_and_two_workers_complete_concurrent_approvals(app, org, tmp_path):
    factory = app.extensions["inkless.db"]
    with app.test_request_context():
        s = factory()
        definitions.deploy(s, None, [(f"{KEY}.bpmn", DIAGRAM)])
        s.commit()
        s.close()

    web = [Gunicorn(app, tmp_path, "--scheduler", "off"), Gunicorn(app, tmp_path, "--scheduler", "off")]
    cfg = app.config["INKLESS"]
    env = subprocess_env(DATABASE_URL=cfg.database_url, INKLESS_DATA_DIR=str(cfg.data_dir),
                         INKLESS_SECRET_KEY="test-secret")
    workers = []
    failures: list[str] = []
    try:
        for server in web:
            server.start()
        workers = [subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--interval", "0.2"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
        ports = [server.port for server in web]
        status, body = _call(ports[0], "POST", "/api/v1/auth/token", body={"username": "clerk", "password": PASSWORD})
        assert status == 200, body
        token = body["access_token"]

        def client(n: int):
            for i in range(PER_CLIENT):
                start_port, complete_port = ports[(n + i) % 2], ports[(n + i + 1) % 2]
                status, instance = _call(start_port, "POST", "/api/v1/process-instances", token, {"process_key": KEY})
                if status != 201:
                    failures.append(f"start {status} {instance}")
                    continue
                status, tasks = _call(complete_port, "GET", f"/api/v1/tasks?instance_id={instance['id']}", token)
                if status != 200 or len(tasks["items"]) != 1:
                    failures.append(f"tasks {status} {tasks}")
                    continue
                status, done = _call(complete_port, "POST", f"/api/v1/tasks/{tasks['items'][0]['id']}/complete",
                                     token, {"data": {}})
                if status != 200 or done["active_elements"] != ["cool_off"]:
                    failures.append(f"complete {status} {done}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert failures == []

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s = factory()
            running = s.scalar(select(func.count()).select_from(ProcessInstance).where(
                ProcessInstance.process_key == KEY, ProcessInstance.state != "completed"))
            s.close()
            if running == 0:
                break
            time.sleep(0.5)
    finally:
        for server in web:
            if server.proc and server.proc.poll() is None:
                server.kill()
        for w in workers:
            w.terminate()
        errors = [w.communicate(timeout=30)[1].decode() for w in workers]

    s = factory()
    completed = s.scalar(select(func.count()).select_from(ProcessInstance).where(
        ProcessInstance.process_key == KEY, ProcessInstance.state == "completed"))
    fired = s.execute(select(InstanceStep.instance_id, func.count()).where(InstanceStep.element_id == "cool_off")
                      .group_by(InstanceStep.instance_id)).all()
    s.close()
    assert completed == CLIENTS * PER_CLIENT, errors
    assert len(fired) == CLIENTS * PER_CLIENT and {n for _, n in fired} == {1}  # no timer fired twice
