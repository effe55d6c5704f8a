"""Built-in help (R-OPS-4): a guide per role, a FAQ, a search over both, and the header's "帮助"
link that opens the guide section for the page the reader is on.

Public: newcomers without an account need it too, and the guides describe what each role can do,
never data. A guide's text lives in its template (service/templates/help/<slug>.html, every
sentence through Babel); its sections are `<section id="…">` elements with an `<h2>`, and that markup
is the one source for the table of contents, the search and the contextual anchors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

from flask import Blueprint, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from markupsafe import Markup

from ..errors import NotFound

bp = Blueprint("help", __name__, url_prefix="/help")

QUERY_MAX = 100  # characters of a search query kept


@dataclass(frozen=True)
class Guide:
    slug: str
    title: str
    summary: str


GUIDES = (
    Guide("staff", N_("Staff: everyday work"),
          N_("Sign in, start a process, complete and save tasks, follow your requests, notifications and documents.")),
    Guide("newcomer", N_("Newcomers: applying for an account"),
          N_("Apply without an account and follow the application with its tracking code.")),
    Guide("head", N_("Department heads: approvals"),
          N_("Review applications and requests: approve, return for amendment with a reason, or reject.")),
    Guide("dept-admin", N_("Department administrators"),
          N_("Accounts of your department, permission changes and the periodic permission review.")),
    Guide("designer", N_("Process designers: the studio"),
          N_("Model processes, design forms, check, try out, deploy and manage versions.")),
    Guide("supervisor", N_("Supervisors: supervision and indicators"),
          N_("Follow running processes, overdue tasks and incidents; read the assessment indicators.")),
    Guide("platform-admin", N_("Platform administrators"),
          N_("Final approval of accounts and permission changes, the permission review, supervision.")),
    Guide("sysadmin", N_("System administrators"),
          N_("Accounts, security settings, second factor, clearances and maintenance.")),
)
FAQ = Guide("faq", N_("Frequently asked questions"), N_("Short answers to the questions people ask most."))
BY_SLUG = {guide.slug: guide for guide in (*GUIDES, FAQ)}

# Where the header's help link leads from each page: the longest matching endpoint prefix wins.
CONTEXT = {
    "pages.home": ("staff", "home"),
    "pages.account.sign_in": ("staff", "sign-in"),
    "pages.account.second_step": ("staff", "sign-in"),
    "pages.account.change_password": ("staff", "sign-in"),
    "pages.tasks.inbox_page": ("staff", "inbox"),
    "pages.tasks": ("staff", "task"),
    "pages.requests.catalogue": ("staff", "start"),
    "pages.requests.start": ("staff", "start"),
    "pages.requests": ("staff", "requests"),
    "pages.notifications": ("staff", "notifications"),
    "pages.documents": ("staff", "documents"),
    "pages.settings": ("staff", "settings"),
    "pages.security": ("staff", "security"),
    "pages.security.users": ("dept-admin", "accounts"),
    "pages.security.reset": ("dept-admin", "accounts"),
    "pages.security.end_sessions": ("dept-admin", "accounts"),
    "pages.apply": ("newcomer", "apply"),
    "pages.apply.track": ("newcomer", "track"),
    "pages.studio": ("designer", "catalogue"),
    "pages.studio.modeler": ("designer", "modeler"),
    "pages.studio.form_editor": ("designer", "forms"),
    "pages.studio.new_table": ("designer", "decisions"),
    "pages.studio.dmn_editor": ("designer", "decisions"),
    "pages.studio.versions": ("designer", "versions"),
    "pages.studio.migrate_instances": ("designer", "versions"),
    "pages.supervise": ("supervisor", "supervise"),
    "pages.supervise.overdue": ("supervisor", "overdue"),
    "pages.supervise.incidents": ("supervisor", "overdue"),
    "pages.supervise.instance": ("supervisor", "actions"),
    "pages.analytics": ("supervisor", "indicators"),
    "pages.analytics.optimise": ("supervisor", "optimise"),
    "pages.analytics.feedback": ("supervisor", "indicators"),
    "pages.policy": ("sysadmin", "policy"),
}

SECTION = re.compile(r'<section id="([a-z0-9-]+)"[^>]*>\s*<h2>(.*?)</h2>(.*?)</section>', re.S)
TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Section:
    anchor: str
    heading: str
    text: str  # plain text, for the search


def sections(guide: Guide) -> tuple[Markup, list[Section]]:
    """The guide's body in the current language and its sections."""
    body = Markup(render_template(f"help/{guide.slug}.html"))
    found = [Section(anchor, _plain(heading), _plain(text)) for anchor, heading, text in SECTION.findall(body)]
    return body, found


def _plain(html: str) -> str:
    return " ".join(unescape(TAG.sub(" ", html)).split())


def roles_of(user) -> list[str]:
    """The guides that describe what `user` does, most specific first (staff last)."""
    groups = user.groups
    department = user.department
    found = [slug for slug, holds in (
        ("sysadmin", user.role == "system_admin"),
        ("dept-admin", user.role == "dept_admin"),
        ("platform-admin", "platform_admin" in groups),
        ("supervisor", "supervisor" in groups),
        ("designer", "designer" in groups),
        ("head", "dept_head" in groups or (department is not None and department.head_id == user.id)),
    ) if holds]
    return [*found, "staff"]


def _search(query: str) -> list[tuple[Guide, Section, str]]:
    """Sections (guides and FAQ) whose heading or text contains every word of the query."""
    words = [w.casefold() for w in query.split()]
    hits = []
    for guide in (*GUIDES, FAQ):
        for section in sections(guide)[1]:
            haystack = f"{section.heading} {section.text}".casefold()
            if all(w in haystack for w in words):
                hits.append((guide, section, _snippet(section.text, words[0])))
    return hits


def _snippet(text: str, word: str, width: int = 80) -> str:
    at = max(text.casefold().find(word), 0)
    start = max(at - width // 2, 0)
    return ("…" if start else "") + text[start:start + width] + ("…" if start + width < len(text) else "")


@bp.app_template_global()
def help_url() -> str:
    """The help for the page being shown (the header's link)."""
    endpoint = request.endpoint or ""
    matches = [prefix for prefix in CONTEXT if endpoint.startswith(prefix)]
    if not matches:
        return url_for("pages.help.index")
    slug, anchor = CONTEXT[max(matches, key=len)]
    return url_for("pages.help.guide", slug=slug, _anchor=anchor)


@bp.route("")
def index():
    user = getattr(g, "user", None)
    mine = roles_of(user) if user is not None else []
    ordered = [BY_SLUG[slug] for slug in mine] + [guide for guide in GUIDES if guide.slug not in mine]
    query = request.args.get("q", "").strip()[:QUERY_MAX]
    hits = _search(query) if query else None
    return render_template("help/index.html", guides=ordered, mine=set(mine), faq=FAQ, query=query, hits=hits)


@bp.route("/<slug>")
def guide(slug: str):
    found = BY_SLUG.get(slug)
    if found is None:
        raise NotFound(_("There is no such help page."))
    body, toc = sections(found)
    return render_template("help/page.html", guide=found, body=body, toc=toc)
