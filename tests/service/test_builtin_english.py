"""Issue 17 (UI language): the regulation's own procedures speak English whole under `?lang=en` —
their names, categories, descriptions, lanes, step names, instructions and forms (the English
their diagrams and forms carry beside the Chinese), on the start page, the first task of each and
the request's timeline. Only what users typed stays as they wrote it: department names here."""
from __future__ import annotations

import html
import re

from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]+")
# Data, not the procedures' text: the test organisation's department names and the language
# switcher, which names Chinese in Chinese.
AS_TYPED = ("平台管理部", "办公室", "财务处", "总部", "中文")


def _chinese_left(page: str) -> list[str]:
    body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    body = re.sub(r"(?s)<!--.*?-->", " ", body)
    # What a reader sees: text and the attributes read aloud or shown (labels, titles, placeholders).
    seen = " ".join(re.findall(r'(?:aria-label|title|placeholder|alt|value)="([^"]*)"', body))
    text = html.unescape(re.sub(r"<[^>]+>", " ", body) + " " + seen)
    for name in AS_TYPED:
        text = text.replace(name, " ")
    return sorted(set(CJK.findall(text)))


def _startable(reader) -> list[str]:
    return re.findall(r'action="/start/([a-z_0-9]+)"', reader.get("/start?lang=en").get_data(as_text=True))


def test_the_built_in_procedures_pages_have_no_chinese_under_english(browser):  # noqa: F811
    seen: set[str] = set()
    problems: list[str] = []

    def check(page: str, where: str) -> None:
        left = _chinese_left(page)
        if left:
            problems.append(f"{where}: {left}")
    for username in ("clerk", "sysadmin", "supervisor"):
        reader = browser(username)
        start = reader.get("/start?lang=en").get_data(as_text=True)
        check(start, f"/start as {username}")
        for key in _startable(reader):
            if key in seen:
                continue
            seen.add(key)
            r = reader.post(f"/start/{key}?lang=en", {})
            assert r.status_code == 302, (key, r.status_code)
            target = r.headers["Location"]
            page = reader.get(target, query_string={"lang": "en"}).get_data(as_text=True)
            check(page, f"{key}: {target}")
            match = re.search(r"/requests/(\d+)", page) or re.search(r"/requests/(\d+)", target)
            if match:
                story = reader.get(f"/requests/{match.group(1)}", query_string={"lang": "en"}).get_data(as_text=True)
                check(story, f"{key}: the request's timeline")
        inbox = reader.get("/tasks?lang=en").get_data(as_text=True)
        check(inbox, f"/tasks as {username}")
    assert not problems, "\n".join(problems)
    # Every procedure the regulation ships was looked at.
    assert {"account_application", "fault_report", "feedback", "file_publication", "permission_change",
            "security_incident", "quarterly_assessment", "permission_review"} <= seen


def test_a_department_named_in_english_reads_in_english(app, login, browser):  # noqa: F811
    """Issue 17: a department may carry its English name beside the Chinese (API, page, CLI
    `--name-en`); English readers see it wherever the department is named, Chinese readers the
    Chinese; a department without one keeps its Chinese name."""
    admin = login("sysadmin")
    r = admin.post("/api/v1/departments", json={"code": "ARCHIVE", "name": "档案室", "name_en": "Records office",
                                                "parent": "HQ"})
    assert r.status_code == 201 and r.get_json()["name_en"] == "Records office", r.get_json()
    reader = browser("sysadmin")
    page = reader.get("/account/departments", query_string={"lang": "en"}).get_data(as_text=True)
    assert "Records office" in page and "档案室" not in page
    assert "办公室" in page  # no English given: as typed
    assert "档案室" in reader.get("/account/departments", query_string={"lang": "zh"}).get_data(as_text=True)
    # Created on the page, the same way.
    r = reader.post("/account/departments", {"code": "LEGAL", "name": "法务室", "name_en": "Legal office"})
    assert r.status_code == 302
    with app.test_request_context():
        from sqlalchemy import select

        from service.models import Department

        s = app.extensions["inkless.db"]()
        assert s.scalar(select(Department.name_en).where(Department.code == "LEGAL")) == "Legal office"
        s.close()
