"""The document library as pages (R-DOC-1 … R-DOC-5, R-SEC-4): browse and search, upload, and one
document's page with its versions, shares and lifecycle.

Every action calls the same service functions as `/api/v1/documents` (library, sharing,
lifecycle), so permissions, mandatory access control, validation and the audit trail are the
same; this module only turns HTML forms into their arguments and errors into messages next to
the fields. Uploads are streamed exactly like the API's: the page never parses a multipart body
itself (see service/csrf.py for how such a form carries its CSRF token). Downloads link to the
API's content routes, which accept the browser session.
"""
from __future__ import annotations

from datetime import datetime, time

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import audit, db
from ..api.documents import _allow_large_body, documents_out, filtered, shares_out, versions_out
from ..documents import access, administration, attachments, library, lifecycle, search, sharing
from ..documents.models import CORE_SECRET, LEVELS, Document
from ..errors import ApiError, Invalid
from ..localtime import PLATFORM_TZ
from ..models import Department
from . import safe_next, signed_in
from .fields import Field

bp = Blueprint("documents", __name__, url_prefix="/documents")

PAGE_SIZE = 50
SCOPES = ("all", "mine", "shared", "department")
STATES = ("current", "archived", "deleted")


def _scope_labels() -> list[tuple[str, str]]:
    return [("all", _("Everything I may read")), ("mine", _("My documents")),
            ("shared", _("Shared with me")), ("department", _("My department's"))]


def _state_labels() -> list[tuple[str, str]]:
    return [("current", _("Current")), ("archived", _("Archived")), ("deleted", _("Trash"))]


def _field_errors(e: ApiError) -> dict[str, str]:
    """Field → message from an error's details; a message without a field goes under `_form`."""
    errors = {d["field"]: d["message"] for d in (e.details or []) if isinstance(d, dict) and "field" in d}
    if not errors or not isinstance(e, Invalid):
        errors["_form"] = e.message
    return errors


@bp.get("")
@signed_in
def library_page():
    user = g.user
    scope = request.args.get("scope") if request.args.get("scope") in SCOPES else "all"
    state = request.args.get("state") if request.args.get("state") in STATES else "current"
    level = request.args.get("level") if request.args.get("level") in LEVELS else ""
    category = request.args.get("category", "").strip()[:64]
    q = request.args.get("q", "").strip()[:200]
    args = {"state": state, "security_level": level or None, "business_type": category or None,
            "mine": scope == "mine", "shared_with_me": scope == "shared"}
    with db.unit_of_work() as s:
        query = filtered(s, user, args)
        if scope == "department":
            query = query.where(Document.department_id == user.department_id)
        if q:
            matches = search.matches(s, q)
            if matches is None:
                rows, total = [], 0
            else:
                query = query.join(matches, matches.c.document_id == Document.id)
                total = s.scalar(select(func.count()).select_from(query.subquery()))
                rows = [d for d, _rank in s.execute(query.add_columns(matches.c.rank)
                                                    .order_by(matches.c.rank, Document.id.desc())
                                                    .limit(PAGE_SIZE)).all()]
            audit.record(s, "documents_searched", "document", None, actor_id=user.id,
                         detail={"q": q, "documents": [d.id for d in rows]})
        else:
            total = s.scalar(select(func.count()).select_from(query.subquery()))
            rows = s.scalars(query.order_by(Document.updated_at.desc(), Document.id.desc()).limit(PAGE_SIZE)).all()
            audit.record(s, "documents_listed", "document", None, actor_id=user.id,
                         detail={"documents": [d.id for d in rows],
                                 "filters": {"scope": scope, "state": state, "level": level, "category": category}})
        items = documents_out(s, rows)
        categories = [(t.code, t.name) for t in administration.business_types(s)]
    return render_template("documents_list.html", items=items, total=total, scope=scope, state=state,
                           level=level, category=category, q=q, scopes=_scope_labels(), states=_state_labels(),
                           levels=LEVELS, categories=categories)


def _levels_for(user) -> list[str]:
    """The levels a user may classify at: nobody above their own clearance."""
    return list(LEVELS[:access.clearance(db.session(), user) + 1])


@bp.route("/upload", methods=["GET", "POST"])
@signed_in
def upload():
    user = g.user
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        _allow_large_body()
        try:
            with db.unit_of_work() as s:
                document = library.upload(s, user, request.stream, request.content_type)
                document_id, title = document.id, document.title
        except ApiError as e:
            errors, status = _field_errors(e), e.status
            values = getattr(e, "submitted", {}) or {}
        else:
            flash(_("Uploaded: %(title)s.", title=title), "success")
            back = request.args.get("next")
            if back:  # from a task form's document field: back there, with the new document chosen
                back = safe_next(back)
                return redirect(f"{back}{'&' if '?' in back else '?'}attach={document_id}", 303)
            return redirect(url_for(".detail", document_id=document_id), 303)
    return render_template("documents_upload.html", fields=_upload_fields(values, errors),
                           form_error=errors.get("_form"),
                           back=safe_next(request.args["next"]) if request.args.get("next") else None), status


@bp.app_template_global()
def attached_documents(ids: list[int]) -> list[attachments.Attached]:
    """Attached documents as the signed-in reader may see them (title or withheld)."""
    return attachments.for_reader(db.session(), g.user, list(ids))


@bp.app_template_global()
def attachable_documents(ids: list[int]) -> list[attachments.Attached]:
    """What the signed-in user may attach, plus what is already chosen."""
    return attachments.choices(db.session(), g.user, list(ids))


def _field(name: str, label: str, widget: str, values: dict, errors: dict, required: bool = False,
           help: str | None = None, options: list | None = None, **attrs) -> Field:
    return Field(name=name, label=label, widget=widget, value=values.get(name), required=required,
                 help=[help] if help else [], options=options or [], attrs=attrs, error=errors.get(name))


def _upload_fields(values: dict, errors: dict) -> list[Field]:
    s = db.session()
    # The level comes before the file: then content below 秘密 goes straight to plain storage.
    return [
        _field("title", _("Title"), "text", values, errors, True, maxlength=200),
        _field("abstract", _("Abstract"), "textarea", values, errors, True, rows=3),
        _field("keywords", _("Keywords"), "text", values, errors, True, _("Separate them with commas.")),
        _field("security_level", _("Security level"), "select", values, errors, True,
               _("秘密 and above are stored encrypted; nobody classifies above their own clearance."),
               [(v, v) for v in _levels_for(g.user)]),
        _field("business_type", _("Category"), "select", values, errors,
               options=[(t.code, t.name) for t in administration.business_types(s)]),
        _field("document_date", _("Document date"), "date", values, errors),
        _field("file", _("File"), "file", values, errors, True, _("PDF, DOCX or UTF-8 text.")),
    ]


def _detail_context(document_id: int) -> dict:
    user = g.user
    with db.unit_of_work() as s:
        document, rights = library.view(s, user, document_id)
        _doc, versions = library.history(s, user, document_id)
        shares = shares_out(s, sharing.shares(s, user, document_id)) if rights.manage else []
        out = documents_out(s, [document], {document.id: rights})[0]
        departments = [(d.code, d.name) for d in s.scalars(select(Department).order_by(Department.code))]
        return {"doc": out, "rights": rights, "versions": versions_out(s, list(reversed(versions))),
                "shares": shares, "departments": departments, "levels": _levels_for(user),
                "core_secret": document.security_level == CORE_SECRET}


def _render_detail(document_id: int, errors: dict[str, str] | None = None, form: str | None = None,
                   values: dict | None = None, status: int = 200):
    context = _detail_context(document_id)
    errors = errors or {}

    def mine(name: str) -> tuple[dict, dict]:
        return (values or {}, errors) if form == name else ({}, {})
    version_values, version_errors = mine("version")
    version_values = {"security_level": context["doc"]["security_level"]} | version_values
    share_values, share_errors = mine("share")
    share_values = {"grantee_kind": "user", "permission": "read"} | share_values
    return render_template(
        "documents_detail.html", form=form, form_error=errors.get("_form"),
        version_fields=_version_fields(version_values, version_errors, context["levels"]),
        share_fields=_share_fields(share_values, share_errors, context["departments"]), **context), status


def _version_fields(values: dict, errors: dict, levels: list[str]) -> list[Field]:
    return [
        _field("change_note", _("Change note"), "textarea", values, errors, True,
               _("What changed and why: every version keeps its note."), rows=2),
        _field("security_level", _("Security level"), "select", values, errors, True,
               options=[(v, v) for v in levels]),
        _field("file", _("New file"), "file", values, errors,
               help=_("Leave it empty to keep the content and change only the details.")),
    ]


def _share_fields(values: dict, errors: dict, departments: list[tuple[str, str]]) -> list[Field]:
    return [
        _field("grantee_kind", _("Share with"), "radio", values, errors, True,
               options=[("user", _("A colleague")), ("department", _("A whole department"))]),
        _field("username", _("Colleague's user name"), "text", values, errors, maxlength=64),
        _field("department", _("Department"), "select", values, errors, options=departments),
        _field("permission", _("Permission"), "radio", values, errors, True,
               options=[("read", _("Read only")), ("edit", _("Read and edit (new versions)"))]),
        _field("expires_at", _("Until (optional)"), "date", values, errors),
    ]


@bp.get("/<int:document_id>")
@signed_in
def detail(document_id: int):
    return _render_detail(document_id)


def _act(document_id: int, form: str, action, done: str):
    """Run one change; on a refusal show the page again with the error next to the form's fields."""
    try:
        with db.unit_of_work() as s:
            action(s)
    except ApiError as e:
        if e.status == 404:
            raise
        values = getattr(e, "submitted", None)
        if values is None:
            # Never request.form on a multipart body (it would spool the file in plaintext).
            values = {} if request.mimetype == "multipart/form-data" else request.form.to_dict()
        values = {k: v for k, v in values.items() if k != "csrf_token"}
        return _render_detail(document_id, _field_errors(e), form, values, e.status)
    flash(done, "success")
    return redirect(url_for(".detail", document_id=document_id), 303)


@bp.post("/<int:document_id>/versions")
@signed_in
def add_version(document_id: int):
    _allow_large_body()
    return _act(document_id, "version",
                lambda s: library.add_version(s, g.user, document_id, request.stream, request.content_type),
                _("A new version was added."))


@bp.post("/<int:document_id>/versions/<int:number>/restore")
@signed_in
def restore(document_id: int, number: int):
    return _act(document_id, "restore",
                lambda s: library.restore(s, g.user, document_id, number, request.form.get("change_note")),
                _("Version %(n)s was restored as a new version.", n=number))


def _expiry(raw: str) -> datetime | None:
    """A date typed on the page: the share lasts to the end of that day, platform time."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        raise Invalid(_("Invalid field: %(fields)s", fields="expires_at"),
                      [{"field": "expires_at", "message": _("a date such as 2026-03-31")}]) from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=PLATFORM_TZ)


@bp.post("/<int:document_id>/shares")
@signed_in
def share(document_id: int):
    form = request.form
    to_user = form.get("grantee_kind", "user") == "user"
    username = (form.get("username") or "").strip() if to_user else ""
    department = "" if to_user else (form.get("department") or "")

    def action(s):
        sharing.share(s, g.user, document_id, username=username or None, department=department or None,
                      permission=form.get("permission", ""), expires_at=_expiry(form.get("expires_at", "")))
    return _act(document_id, "share", action, _("The document was shared."))


@bp.post("/<int:document_id>/shares/<int:share_id>/revoke")
@signed_in
def revoke(document_id: int, share_id: int):
    return _act(document_id, "revoke", lambda s: sharing.unshare(s, g.user, document_id, share_id),
                _("The share was withdrawn."))


@bp.post("/<int:document_id>/delete")
@signed_in
def delete(document_id: int):
    return _act(document_id, "delete", lambda s: lifecycle.delete(s, g.user, document_id),
                _("The document was moved to the trash."))


@bp.post("/<int:document_id>/undelete")
@signed_in
def undelete(document_id: int):
    return _act(document_id, "delete", lambda s: lifecycle.undelete(s, g.user, document_id),
                _("The document was taken out of the trash."))
