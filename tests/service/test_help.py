"""Built-in help, user guides and FAQs for every role (R-OPS-4): /help, /help/<guide>, the search,
and the header's contextual "帮助" link."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from service.pages.help import BY_SLUG, CONTEXT, GUIDES
from tests.service import test_pages
from tests.service.studio_helpers import create_model
from tests.service.test_pages import _start_application, text
from tests.service.test_workspace_pages import CJK

browser = test_pages.browser  # the signed-in people of the page tests

SLUGS = sorted(BY_SLUG)
# Four or more Latin words in a row: an English sentence (names such as "JSON Schema" or "API" are fine).
ENGLISH = re.compile(r"[A-Za-z]{2,}(?:[ ,'’-]+[A-Za-z]{2,}){3,}")
HELP_LINK = re.compile(r'<a class="help-link" href="([^"]+)">')


def visible_text(html: str, drop_lang: str) -> str:
    """The page's text as read: no script, no markup, and no element marked as the other language
    (the header's language switch names the other language in that language)."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    html = re.sub(rf'<a [^>]*lang="{drop_lang}"[^>]*>.*?</a>', " ", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def sections_of(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z0-9-]+)"', html)


@pytest.mark.parametrize("slug", SLUGS)
def test_every_guide_renders_in_chinese_and_in_english(slug, anon, client):
    """R-OPS-4: each guide (and the FAQ) is public, Chinese by default, English with ?lang=en, and
    neither language leaks into the other."""
    zh = client.get(f"/help/{slug}")
    assert zh.status_code == 200
    zh_html = text(zh)
    assert '<html lang="zh-CN">' in zh_html
    zh_text = visible_text(zh_html, drop_lang="en")
    assert not ENGLISH.findall(zh_text), ENGLISH.findall(zh_text)
    assert len(sections_of(zh_html)) >= 3

    en = client.get(f"/help/{slug}", query_string={"lang": "en"})
    assert en.status_code == 200
    en_html = text(en)
    assert '<html lang="en">' in en_html
    en_text = visible_text(en_html, drop_lang="zh-CN")
    assert not CJK.findall(en_text), [m for m in re.findall(r".{0,30}[\u4e00-\u9fff]+.{0,30}", en_text)]
    # Same sections in both languages, and every one is in the table of contents.
    assert sections_of(en_html) == sections_of(zh_html)
    for anchor in sections_of(en_html):
        assert f'href="#{anchor}"' in en_html


def test_the_index_lists_every_guide_and_the_faq_in_both_languages(client):
    """R-OPS-4: the help index is public and links every role's guide."""
    for lang, check in (("zh", ENGLISH), ("en", CJK)):
        r = client.get("/help", query_string={"lang": lang})
        assert r.status_code == 200
        html = text(r)
        for guide in GUIDES:
            assert f'href="/help/{guide.slug}"' in html
        assert 'href="/help/faq"' in html
        assert not check.findall(visible_text(html, drop_lang="en" if lang == "zh" else "zh-CN"))


def test_the_faq_answers_at_least_fifteen_real_questions(client):
    """R-OPS-4: forgotten password, lost authenticator, missing task, 退回修改, attachments, clearance,
    tracking code, session timeout … each a section with a question and an answer."""
    html = text(client.get("/help/faq"))
    questions = re.findall(r'<section id="faq-[a-z-]+">\s*<h2>([^<]+)</h2>\s*<p>([^<]+)</p>', html)
    assert len(questions) >= 15
    asked = " ".join(q for q, _answer in questions)
    for topic in ("忘记密码", "身份验证器", "待办", "退回修改", "附加文件", "看不到", "查询", "退出登录"):
        assert topic in asked, topic


def test_an_unknown_guide_is_a_404_page(client):
    r = client.get("/help/no-such-guide")
    assert r.status_code == 404
    assert "没有这个帮助页面" in text(r)


def test_the_search_finds_sections_of_guides_and_faq_in_the_readers_language(client):
    """R-OPS-4: ?q= searches headings and text of every guide and the FAQ; every word must match."""
    html = text(client.get("/help", query_string={"q": "退回修改"}))
    assert 'href="/help/faq#faq-returned"' in html
    assert 'href="/help/head#decisions"' in html

    html = text(client.get("/help", query_string={"q": "recovery code", "lang": "en"}))
    assert 'href="/help/faq#faq-authenticator"' in html
    assert 'href="/help/sysadmin#mfa"' in html
    assert 'href="/help/designer#' not in html

    raw = client.get("/help", query_string={"q": "<b>zzzz", "lang": "zh"}).get_data(as_text=True)
    assert "帮助中没有与“&lt;b&gt;zzzz”相关的内容" in raw  # the query is shown escaped, not as markup


def _target(b, url: str) -> tuple[str, str]:
    """Follow a contextual help link: the guide page answers and has the anchor it points to."""
    parts = urlsplit(url)
    assert parts.fragment, url
    page = b.get(parts.path)
    assert page.status_code == 200, url
    assert f'<section id="{parts.fragment}">' in text(page), url
    return parts.path, parts.fragment


def test_the_header_help_link_opens_the_section_for_the_current_page(browser, login):
    """R-OPS-4: "帮助" in the header of the inbox, a task, the studio and supervision leads to the
    guide section about that page, and that section exists."""
    admin = browser("office_admin")
    task_url = _start_application(admin)
    create_model(login("office_admin"), "help_demo")
    expected = {
        "/tasks": ("/help/staff", "inbox"),
        task_url: ("/help/staff", "task"),
        "/studio": ("/help/designer", "catalogue"),
        "/studio/help_demo": ("/help/designer", "modeler"),
        "/supervise": ("/help/supervisor", "supervise"),
        "/supervise/overdue": ("/help/supervisor", "overdue"),
        "/requests": ("/help/staff", "requests"),
        "/documents": ("/help/staff", "documents"),
    }
    for page, target in expected.items():
        r = admin.get(page)
        assert r.status_code == 200, page
        (link,) = HELP_LINK.findall(text(r))
        assert _target(admin, link) == target, page
    # A page with no section of its own leads to the index.
    (link,) = HELP_LINK.findall(text(admin.get("/help/faq")))
    assert link == "/help"


def test_every_contextual_anchor_exists(client):
    """R-OPS-4: no entry of the endpoint → section map points to a missing section."""
    for slug, anchor in set(CONTEXT.values()):
        assert f'<section id="{anchor}">' in text(client.get(f"/help/{slug}")), (slug, anchor)


def test_newcomers_see_the_help_link_on_the_public_pages(browser):
    """R-OPS-4: without an account the sign-in and application pages link to the newcomers' guide."""
    b = browser()
    (link,) = HELP_LINK.findall(text(b.get("/apply")))
    assert _target(b, link) == ("/help/newcomer", "apply")
    (link,) = HELP_LINK.findall(text(b.get("/apply/track")))
    assert _target(b, link) == ("/help/newcomer", "track")
    (link,) = HELP_LINK.findall(text(b.get("/signin")))
    assert _target(b, link) == ("/help/staff", "sign-in")


def _guide_order(html: str) -> list[str]:
    listing = html.split('id="guides-h"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="/help/([a-z-]+)"', listing)


def test_a_signed_in_reader_sees_their_own_role_guides_first(browser):
    """R-OPS-4: the department admin's guide comes first for a department admin (who is also a
    designer here), then the staff guide; a clerk sees staff first; a visitor the usual order."""
    html = text(browser("office_admin").get("/help"))
    assert _guide_order(html)[:3] == ["dept-admin", "designer", "staff"]
    assert html.count("您的角色") == 3
    assert _guide_order(text(browser("office_head").get("/help")))[:2] == ["head", "staff"]
    assert _guide_order(text(browser("supervisor").get("/help")))[:2] == ["supervisor", "staff"]
    assert _guide_order(text(browser("clerk").get("/help")))[0] == "staff"
    anonymous = text(browser().get("/help"))
    assert _guide_order(anonymous) == [guide.slug for guide in GUIDES]
    assert "您的角色" not in anonymous
