"""No database lock is held while designer code runs, and concurrent work on one task or one
instance has exactly one outcome (issue 13; R-WF-1, R-WF-2, R-SEC-10).

Everything goes through a real `inkless serve` process (threaded) on the test database — SQLite
by default, PostgreSQL with DATABASE_URL — with a generous script time limit, so a designer's
script may legitimately run for seconds. The diagrams are deployed by a department designer
through the studio API, as in production.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import PASSWORD
from tests.service.studio_helpers import HEAD, user_task
from tests.service.test_durability import Server

# A few seconds of legitimate work in RestrictedPython (about 3 million loop turns).
LONG = "total = 0\nfor i in range(10**6):\n    for j in range(3):\n        total += j\n"
SHORT = "total = 0\nfor i in range(3 * 10**5):\n    total += i\n"
QUICK = 1.0  # seconds another user's sign-in or task list may take meanwhile


def quick_enough(server: LiveServer) -> float:
    """QUICK, or three times a sign-in measured now when the machine is so loaded that a sign-in
    (argon2) alone takes longer: a wait on a lock is seconds, a busy CPU's share is not."""
    began = time.monotonic()
    server.sign_in("office_head")
    return max(QUICK, 3 * (time.monotonic() - began))


class LiveServer(Server):
    def __init__(self, app):
        super().__init__(app)
        self.env["INKLESS_SCRIPT_TIME_LIMIT"] = "120"

    def send(self, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, method: str, path: str, body=None, token: str | None = None) -> dict:
        status, answer = self.send(method, path, body, token)
        assert status in (200, 201), (status, answer)
        return answer

    def sign_in(self, username: str) -> str:
        return self.ok("POST", "/api/v1/auth/token", {"username": username, "password": PASSWORD})["access_token"]

    def deploy(self, designer: str, key: str, xml: str) -> None:
        """As a department designer: create the model, save the diagram, deploy it."""
        token = self.sign_in(designer)
        self.ok("POST", "/api/v1/studio", {"key": key, "name": "统计报表", "starters": {"departments": ["OFFICE"]}},
                token)
        saved = self.ok("PUT", f"/api/v1/studio/{key}/draft", {"version": 1, "xml": xml}, token)
        self.ok("POST", f"/api/v1/studio/{key}/deploy", {"version": saved["version"]}, token)


def _script(eid: str, source: str) -> str:
    return f'<bpmn:scriptTask id="{eid}" name="统计"><bpmn:script>{source}</bpmn:script></bpmn:scriptTask>\n'


def _flows(*pairs: tuple[str, str]) -> str:
    return "".join(f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}" />\n' for a, b in pairs)


def _process(key: str, body: str) -> str:
    return HEAD + f'<bpmn:process id="{key}" name="统计报表" isExecutable="true">\n{body}</bpmn:process>\n</bpmn:definitions>\n'


def crunch_at_start(key: str) -> str:
    """start → crunch (long script) → review (initiator) → end: the script runs while starting."""
    return _process(key, '<bpmn:startEvent id="start" />\n' + _script("crunch", LONG) + user_task("review", "核对")
                    + '<bpmn:endEvent id="end" />\n' + _flows(("start", "crunch"), ("crunch", "review"), ("review", "end")))


def crunch_after(key: str, performers: str, script: str = LONG) -> str:
    """start → fill (`performers`) → crunch (script) → end: the script runs when fill is completed."""
    return _process(key, '<bpmn:startEvent id="start" />\n' + user_task("fill", "填报", performers)
                    + _script("crunch", script) + '<bpmn:endEvent id="end" />\n'
                    + _flows(("start", "fill"), ("fill", "crunch"), ("crunch", "end")))


def parallel_crunch(key: str, first: str, second: str) -> str:
    """start → fork → (a by `first` → crunch_a | b by `second` → crunch_b) → join → end."""
    body = ('<bpmn:startEvent id="start" />\n<bpmn:parallelGateway id="fork" />\n<bpmn:parallelGateway id="join" />\n'
            + user_task("a", "甲填报", first) + user_task("b", "乙填报", second)
            + _script("crunch_a", SHORT) + _script("crunch_b", SHORT) + '<bpmn:endEvent id="end" />\n'
            + _flows(("start", "fork"), ("fork", "a"), ("fork", "b"), ("a", "crunch_a"), ("b", "crunch_b"),
                     ("crunch_a", "join"), ("crunch_b", "join"), ("join", "end")))
    return _process(key, body)


def _add_inspectors(app, count: int) -> list[str]:
    from service import org as org_module

    names = [f"inspector{n}" for n in range(1, count + 1)]
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        for n, name in enumerate(names, 1):
            org_module.create_user(s, name, PASSWORD, "OFFICE", groups=["inspector"], full_name=f"检查员{n}号")
        s.commit()
        s.close()
    return names


@pytest.fixture
def server(app, org):
    live = LiveServer(app)
    yield live
    if live.proc and live.proc.poll() is None:
        live.kill()


def _in_background(call) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        result["answer"] = call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _timed(call) -> float:
    began = time.monotonic()
    call()
    return time.monotonic() - began


def _others_are_served_meanwhile(server: LiveServer, running: threading.Thread, quick: float) -> None:
    # Give the long request time to get past its reads and into the script.
    time.sleep(0.8)
    assert running.is_alive(), "the script finished too early to show anything"
    sign_in = _timed(lambda: server.sign_in("fin_head"))
    token = server.sign_in("supervisor")
    task_list = _timed(lambda: server.ok("GET", "/api/v1/tasks", token=token))
    assert running.is_alive(), "the other requests must have been answered while the script ran"
    assert sign_in < quick and task_list < quick, (sign_in, task_list, quick)


def test_sign_in_and_task_list_answer_while_a_script_runs_at_start(server):
    """Issue 13: starting an instance whose first step is a long script holds no lock, so another
    user signs in and lists tasks in well under a second meanwhile; the start then succeeds."""
    server.start()
    server.deploy("office_admin", "monthly_report", crunch_at_start("monthly_report"))
    clerk = server.sign_in("clerk")
    quick = quick_enough(server)

    running, result = _in_background(
        lambda: server.send("POST", "/api/v1/process-instances", {"process_key": "monthly_report"}, clerk))
    _others_are_served_meanwhile(server, running, quick)
    running.join(timeout=120)
    status, started = result["answer"]
    assert status == 201 and started["active_elements"] == ["review"], started
    assert "crunch" in started["completed_elements"]


def test_sign_in_and_task_list_answer_while_a_completion_runs_a_script(server):
    """Issue 13: completing a task that is followed by a long script holds no lock meanwhile."""
    server.start()
    server.deploy("office_admin", "monthly_report", crunch_after("monthly_report", "initiator"))
    clerk = server.sign_in("clerk")
    instance = server.ok("POST", "/api/v1/process-instances", {"process_key": "monthly_report"}, clerk)
    task = server.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=clerk)["items"][0]
    quick = quick_enough(server)

    running, result = _in_background(
        lambda: server.send("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {"month": "11"}}, clerk))
    _others_are_served_meanwhile(server, running, quick)
    running.join(timeout=120)
    status, done = result["answer"]
    assert status == 200 and done["state"] == "completed", done


def _at_once(calls: list) -> list:
    """Run the calls in threads released together; their answers in the same order."""
    barrier = threading.Barrier(len(calls))
    answers: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return answers


def test_two_people_completing_one_task_at_once_one_wins_and_nothing_is_written_twice(app, server):
    """One task offered to a group, completed by two of its members at the same moment while the
    step after it runs for seconds: one completion stands, the other is answered 409, and the
    history holds the task and the script once, with the winner's data (R-WF-2, R-SEC-10)."""
    first, second = _add_inspectors(app, 2)
    server.start()
    server.deploy("office_admin", "monthly_report", crunch_after("monthly_report", "group:inspector"))
    starter = server.sign_in("office_admin")
    instance = server.ok("POST", "/api/v1/process-instances", {"process_key": "monthly_report"}, starter)
    tokens = [server.sign_in(first), server.sign_in(second)]
    task = server.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=tokens[0])["items"][0]

    answers = _at_once([
        lambda t=t, n=n: server.send("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {"by": n}}, t)
        for n, t in zip((first, second), tokens, strict=True)])

    assert sorted(status for status, _ in answers) == [200, 409], answers
    winner = (first, second)[[status for status, _ in answers].index(200)]
    loser_answer = next(body for status, body in answers if status == 409)
    assert loser_answer["code"] == "conflict" and loser_answer["message"], loser_answer
    state = server.ok("GET", f"/api/v1/process-instances/{instance['id']}", token=starter)
    assert state["state"] == "completed"
    steps = [(h["element_id"], h["user"]) for h in state["history"]]
    assert steps.count(("fill", winner)) == 1 and [e for e, _ in steps].count("fill") == 1, steps
    assert [e for e, _ in steps].count("crunch") == 1, steps
    assert server.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=tokens[0])["total"] == 0


def test_two_parallel_tasks_completed_at_once_both_stand(app, server):
    """Two people finishing the two branches of one instance at the same moment both did valid
    work: the one whose write comes second is run again on the instance as it now is, and
    both answers are 200 — the version check never costs a user their work."""
    first, second = _add_inspectors(app, 2)
    server.start()
    server.deploy("office_admin", "joint_report",
                  parallel_crunch("joint_report", f"user:{first}", f"user:{second}"))
    starter = server.sign_in("office_admin")
    instance = server.ok("POST", "/api/v1/process-instances", {"process_key": "joint_report"}, starter)
    tokens = {name: server.sign_in(name) for name in (first, second)}
    tasks = {name: server.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=t)["items"][0]
             for name, t in tokens.items()}
    assert {t["element_id"] for t in tasks.values()} == {"a", "b"}

    answers = _at_once([
        lambda n=n: server.send("POST", f"/api/v1/tasks/{tasks[n]['id']}/complete", {"data": {"by": n}}, tokens[n])
        for n in (first, second)])

    assert [status for status, _ in answers] == [200, 200], answers
    state = server.ok("GET", f"/api/v1/process-instances/{instance['id']}", token=starter)
    assert state["state"] == "completed"
    elements = sorted(h["element_id"] for h in state["history"] if h["element_id"] in ("a", "b", "crunch_a", "crunch_b"))
    assert elements == ["a", "b", "crunch_a", "crunch_b"], state["history"]


def test_eight_members_claiming_one_task_at_once_give_one_assignee(app, server):
    """Issue 13: a task offered to a group is claimed by eight members at the same moment: exactly
    one gets it; the seven others are answered 409 naming who has it, and cannot complete it."""
    names = _add_inspectors(app, 8)
    server.start()
    server.deploy("office_admin", "site_check", crunch_after("site_check", "group:inspector", SHORT))
    starter = server.sign_in("office_admin")
    instance = server.ok("POST", "/api/v1/process-instances", {"process_key": "site_check"}, starter)
    tokens = [server.sign_in(name) for name in names]
    task = server.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=tokens[0])["items"][0]

    answers = _at_once([lambda t=t: server.send("POST", f"/api/v1/tasks/{task['id']}/claim", token=t)
                        for t in tokens])

    statuses = [status for status, _ in answers]
    assert sorted(statuses) == [200] + [409] * 7, answers
    won = statuses.index(200)
    holder = f"检查员{won + 1}号"
    assert answers[won][1]["assignee"] == names[won], answers[won]
    for status, body in answers:
        if status == 409:
            assert holder in body["message"], body
    loser = tokens[(won + 1) % len(tokens)]
    assert server.send("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {}}, loser)[0] == 403
    assert server.send("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {}}, tokens[won])[0] == 200


# Runaway designer code of issue 13, under the platform's default limits (2 s, 512 MB).
RUNAWAY = {
    "endless loop past finally": "try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass\n",
    "work inside C": "x = 10**10**10\n",
    "no memory cap": "x = 'x' * 10**10\n",
}


@pytest.mark.parametrize("script", list(RUNAWAY.values()), ids=list(RUNAWAY))
def test_a_runaway_script_is_an_incident_within_seconds_and_others_sign_in_meanwhile(app, org, script):
    """Issue 13 (R-SEC-10): on a real server with the default limits, a designer's runaway script
    ends the instance in an incident on its task within a few seconds, and another user's sign-in
    during it answers in under a second."""
    live = LiveServer(app)
    live.env.pop("INKLESS_SCRIPT_TIME_LIMIT")
    try:
        live.start()
        live.deploy("office_admin", "runaway_report", crunch_after("runaway_report", "initiator", script))
        clerk = live.sign_in("clerk")
        instance = live.ok("POST", "/api/v1/process-instances", {"process_key": "runaway_report"}, clerk)
        task = live.ok("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=clerk)["items"][0]
        quick = quick_enough(live)
        began = time.monotonic()
        running, result = _in_background(
            lambda: live.send("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": {}}, clerk))
        time.sleep(0.4)
        sign_in = _timed(lambda: live.sign_in("fin_head"))
        overlapped = running.is_alive()
        running.join(timeout=60)
        elapsed = time.monotonic() - began
        status, body = result["answer"]
        assert status == 200 and body["state"] == "error", body
        assert [i["element"] for i in body["incidents"]] == ["crunch"], body["incidents"]
        assert elapsed < 6, f"the runaway step took {elapsed:.1f} s"
        assert sign_in < quick, f"another user's sign-in took {sign_in:.2f} s during the runaway script"
        # The CPU-bound ones run until the time limit: the sign-in was answered while they ran (the
        # allocation is refused at once, so it has nothing to overlap).
        assert overlapped or "10**10 " in script or "* 10**10" in script
    finally:
        if live.proc and live.proc.poll() is None:
            live.kill()
