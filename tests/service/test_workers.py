"""Several `inkless worker` processes share one database and fire each due timer exactly once."""
from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import func, select

from service import definitions, instances
from service.models import InstanceStep, ProcessInstance, ScheduledJob
from tests.conftest import subprocess_env
from tests.service.diagrams import wait_process

TIMERS = 500


def test_two_workers_fire_each_of_500_timers_exactly_once(app, org):
    factory = app.extensions["inkless.db"]
    with app.test_request_context():
        s = factory()
        definitions.deploy(s, None, [("wait.bpmn", wait_process("short_wait", "PT2S"))])
        for _ in range(TIMERS):
            instances.start(s, None, "short_wait")
        s.commit()
        assert s.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == "timer")) == TIMERS
        s.close()

    cfg = app.config["INKLESS"]
    env = subprocess_env(DATABASE_URL=cfg.database_url, INKLESS_DATA_DIR=str(cfg.data_dir),
                         INKLESS_SECRET_KEY="test-secret")
    workers = [subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--interval", "0.2"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s = factory()
            running = s.scalar(select(func.count()).select_from(ProcessInstance)
                               .where(ProcessInstance.process_key == "short_wait", ProcessInstance.state == "running"))
            s.close()
            if running == 0:
                break
            time.sleep(0.5)
    finally:
        for w in workers:
            w.terminate()
        errors = [w.communicate(timeout=30)[1].decode() for w in workers]

    s = factory()
    fired = s.execute(select(InstanceStep.instance_id, func.count()).where(InstanceStep.element_id == "wait")
                      .group_by(InstanceStep.instance_id)).all()
    completed = s.scalar(select(func.count()).select_from(ProcessInstance).where(
        ProcessInstance.process_key == "short_wait", ProcessInstance.state == "completed"))
    # Only the platform's own recurring jobs (digest, snapshots) remain; every timer is gone.
    left = s.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == "timer"))
    s.close()
    assert completed == TIMERS, errors
    assert len(fired) == TIMERS
    assert {n for _, n in fired} == {1}  # no timer fired twice
    assert left == 0
