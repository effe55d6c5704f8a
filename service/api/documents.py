"""The document library (R-DOC-1 … R-DOC-5, R-SEC-3, R-SEC-4): upload, browse, search, versions,
shares, lifecycle and administration. Every access is audited by the service functions."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import audit, auth, db, exports
from ..documents import access, administration, break_glass, library, lifecycle, search, settings, sharing
from ..documents.models import (
    LEVELS,
    BusinessType,
    Document,
    DocumentShare,
    DocumentVersion,
    StoredObject,
    level_name,
)
from ..documents.storage import iter_plain
from ..models import Department, User
from . import document_schemas as schemas
from .blueprint import Blueprint

PREFIX = "/documents"
blp = Blueprint("documents", __name__, description="The document library")
# Room for the multipart framing and the metadata fields around the file.
MULTIPART_OVERHEAD = 1024 * 1024


@blp.record_once
def _setup(state) -> None:
    settings.init_app(state.app)


# --- shapes ------------------------------------------------------------------------------------

def _names(s: Session, model, ids, attr: str = "code") -> dict:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(s.execute(select(model.id, getattr(model, attr)).where(model.id.in_(ids))).all())


def documents_out(s: Session, documents: list[Document], rights: dict | None = None, ranks: dict | None = None) -> list[dict]:
    departments = _names(s, Department, [d.department_id for d in documents])
    types = _names(s, BusinessType, [d.business_type_id for d in documents])
    owners = _names(s, User, [d.owner_id for d in documents], "username")
    current = {}
    if documents:
        rows = s.execute(select(DocumentVersion, StoredObject.algorithm)
                         .join(StoredObject, StoredObject.id == DocumentVersion.object_id)
                         .where(DocumentVersion.document_id.in_([d.id for d in documents]))
                         .where(DocumentVersion.number == select(Document.current_version)
                                .where(Document.id == DocumentVersion.document_id).scalar_subquery())).all()
        current = {v.document_id: (v, algorithm) for v, algorithm in rows}
    out = []
    for d in documents:
        version, algorithm = current[d.id]
        item = {
            "id": d.id, "title": d.title, "abstract": d.abstract, "keywords": d.keywords,
            "business_type": types.get(d.business_type_id), "department": departments.get(d.department_id),
            "document_date": d.document_date, "security_level": level_name(d.security_level), "state": d.state,
            "owner": owners.get(d.owner_id), "current_version": d.current_version, "file_name": version.file_name,
            "content_type": version.content_type, "size": version.size, "encrypted": algorithm != "none",
            "created_at": d.created_at, "updated_at": d.updated_at, "archived_at": d.archived_at,
            "deleted_at": d.deleted_at, "purge_after": d.purge_after, "published_at": d.published_at,
            "audience": d.audience,
        }
        if rights and d.id in rights:
            item["permissions"] = rights[d.id].as_dict()
        if ranks and d.id in ranks:
            item["rank"] = ranks[d.id]
        out.append(item)
    return out


def versions_out(s: Session, versions: list[DocumentVersion]) -> list[dict]:
    departments = _names(s, Department, [v.department_id for v in versions])
    types = _names(s, BusinessType, [v.business_type_id for v in versions])
    users = _names(s, User, [v.created_by for v in versions], "username")
    algorithms = _names(s, StoredObject, [v.object_id for v in versions], "algorithm")
    return [{
        "number": v.number, "file_name": v.file_name, "content_type": v.content_type, "size": v.size,
        "change_note": v.change_note, "created_by": users.get(v.created_by), "created_at": v.created_at,
        "restored_from": v.restored_from, "title": v.title, "abstract": v.abstract, "keywords": v.keywords,
        "business_type": types.get(v.business_type_id), "department": departments.get(v.department_id),
        "document_date": v.document_date, "security_level": level_name(v.security_level),
        "encrypted": algorithms.get(v.object_id) != "none", "algorithm": algorithms.get(v.object_id),
    } for v in versions]


def shares_out(s: Session, rows: list[DocumentShare]) -> list[dict]:
    users = _names(s, User, [r.user_id for r in rows] + [r.created_by for r in rows], "username")
    departments = _names(s, Department, [r.department_id for r in rows])
    return [{"id": r.id, "username": users.get(r.user_id), "department": departments.get(r.department_id),
             "permission": r.permission, "expires_at": r.expires_at, "created_by": users.get(r.created_by),
             "created_at": r.created_at} for r in rows]


def filtered(s: Session, user: User, args: dict):
    state = args["state"]
    query = select(Document).where(access.readable(s, user, include_deleted=state == "deleted"))
    if state == "current":
        query = query.where(Document.state.in_(("active", "archived")))
    else:
        query = query.where(Document.state == state)
    if args.get("business_type"):
        query = query.where(Document.business_type_id.in_(administration.descendants(s, args["business_type"])))
    if args.get("department"):
        query = query.join(Department, Department.id == Document.department_id).where(
            Department.code == args["department"])
    if args.get("security_level"):
        query = query.where(Document.security_level == LEVELS.index(args["security_level"]))
    if args.get("date_from"):
        query = query.where(Document.document_date >= args["date_from"])
    if args.get("date_to"):
        query = query.where(Document.document_date <= args["date_to"])
    if args.get("mine"):
        query = query.where(Document.owner_id == user.id)
    if args.get("shared_with_me"):
        query = query.where(Document.id.in_(select(DocumentShare.document_id).where(
            (DocumentShare.user_id == user.id) | (DocumentShare.department_id == user.department_id))))
    if args.get("published") is not None:
        query = query.where(Document.published_at.is_not(None) if args["published"] else Document.published_at.is_(None))
    return query


def _download(version: DocumentVersion, source) -> Response:
    return Response(iter_plain(source), content_type=version.content_type, direct_passthrough=True, headers={
        "Content-Length": str(version.size), "Content-Disposition": exports.disposition(version.file_name),
        "Cache-Control": "no-store"})


def _allow_large_body() -> None:
    # Flask 3.1 lets one view raise the app-wide MAX_CONTENT_LENGTH; set before the stream is read.
    request.max_content_length = settings.current().max_upload_bytes + MULTIPART_OVERHEAD


# --- documents ---------------------------------------------------------------------------------

@blp.route("")
class Documents(MethodView):
    @blp.arguments(schemas.DocumentArgs, location="query")
    @blp.response(200, schemas.DocumentList)
    def get(self, args):
        """Browse what I may read: filter by business type (with its subtree), department, level,
        document date, state (`deleted` = the trash), mine, shared with me, published."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            query = filtered(s, user, args)
            total = s.scalar(select(func.count()).select_from(query.subquery()))
            rows = s.scalars(query.order_by(Document.updated_at.desc(), Document.id.desc())
                             .limit(args["limit"]).offset(args["offset"])).all()
            audit.record(s, "documents_listed", "document", None, actor_id=user.id,
                         detail={"documents": [d.id for d in rows], "filters": _plain(args)})
            return {"items": documents_out(s, rows), "total": total}

    @blp.doc(requestBody=schemas.UPLOAD_BODY)
    @blp.response(201, schemas.DocumentOut)
    def post(self):
        """Upload a document (R-DOC-1): multipart with the file and its metadata. The type is
        sniffed from the content; 秘密 and above are stored encrypted (R-DOC-2)."""
        user = auth.current_user()
        _allow_large_body()
        with db.unit_of_work() as s:
            document = library.upload(s, user, request.stream, request.content_type)
            return documents_out(s, [document], {document.id: access.rights(s, user, document)})[0]


@blp.route("/search")
class Search(MethodView):
    @blp.arguments(schemas.SearchArgs, location="query")
    @blp.response(200, schemas.DocumentList)
    def get(self, args):
        """Full-text search (Chinese segmented) over title, abstract, keywords and the text of
        公开/内部 files; only documents I may read, best first."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            matches = search.matches(s, args["q"])
            rows, total, ranks = [], 0, {}
            if matches is not None:
                query = filtered(s, user, args).join(matches, matches.c.document_id == Document.id)
                total = s.scalar(select(func.count()).select_from(query.subquery()))
                found = s.execute(query.add_columns(matches.c.rank).order_by(matches.c.rank, Document.id.desc())
                                  .limit(args["limit"]).offset(args["offset"])).all()
                rows = [d for d, _rank in found]
                ranks = {d.id: rank for d, rank in found}
            audit.record(s, "documents_searched", "document", None, actor_id=user.id,
                         detail={"q": args["q"], "documents": [d.id for d in rows]})
            return {"items": documents_out(s, rows, ranks=ranks), "total": total}


def _plain(args: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in args.items() if k not in ("limit", "offset")}


@blp.route("/<int:document_id>")
class DocumentResource(MethodView):
    @blp.response(200, schemas.DocumentOut)
    def get(self, document_id):
        """A document's current metadata and what I may do with it."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            document, rights = library.view(s, user, document_id)
            return documents_out(s, [document], {document.id: rights})[0]

    @blp.response(200, schemas.DocumentOut)
    def delete(self, document_id):
        """Move to the trash (soft delete); restorable until `purge_after` (retention)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            document = lifecycle.delete(s, user, document_id)
            return documents_out(s, [document])[0]


@blp.route("/<int:document_id>/undelete")
class Undelete(MethodView):
    @blp.response(200, schemas.DocumentOut)
    def post(self, document_id):
        """Take a document back out of the trash."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            document = lifecycle.undelete(s, user, document_id)
            return documents_out(s, [document])[0]


@blp.route("/<int:document_id>/versions")
class Versions(MethodView):
    @blp.response(200, schemas.VersionList)
    def get(self, document_id):
        """The history: every version with its change note and metadata (R-DOC-5)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            document, versions = library.history(s, user, document_id)
            return {"document_id": document.id, "items": versions_out(s, versions)}

    @blp.doc(requestBody=schemas.VERSION_BODY)
    @blp.response(201, schemas.VersionOut)
    def post(self, document_id):
        """A new version (R-DOC-5): multipart with a mandatory `change_note`, a new file and/or
        changed metadata (what is not sent is kept). Needs ownership or an edit share."""
        user = auth.current_user()
        _allow_large_body()
        with db.unit_of_work() as s:
            version = library.add_version(s, user, document_id, request.stream, request.content_type)
            return versions_out(s, [version])[0]


@blp.route("/<int:document_id>/content")
class CurrentContent(MethodView):
    @blp.response(200, description="The current version's file")
    def get(self, document_id):
        """Download the current version."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            version, source = library.open_download(s, user, document_id, None)
        return _download(version, source)


@blp.route("/<int:document_id>/versions/<int:number>/content")
class VersionContent(MethodView):
    @blp.response(200, description="That version's file")
    def get(self, document_id, number):
        """Download any version."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            version, source = library.open_download(s, user, document_id, number)
        return _download(version, source)


@blp.route("/<int:document_id>/versions/<int:number>/diff")
class VersionDiff(MethodView):
    @blp.arguments(schemas.DiffArgs, location="query")
    @blp.response(200, schemas.DiffOut)
    def get(self, args, document_id, number):
        """What changed in the metadata (and whether the content changed) against another version."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            result = library.diff(s, user, document_id, number, args.get("against"))
            result["changes"] = [_readable_change(s, c) for c in result["changes"]]
            return result


def _readable_change(s: Session, change: dict) -> dict:
    name, old, new = change["field"], change["from"], change["to"]
    if name == "security_level":
        old, new = level_name(old), level_name(new)
    elif name in ("department_id", "business_type_id"):
        model = Department if name == "department_id" else BusinessType
        codes = _names(s, model, [old, new])
        name, old, new = name[:-3], codes.get(old), codes.get(new)
    elif name == "document_date":
        old, new = old and old.isoformat(), new and new.isoformat()
    return {"field": name, "from_": old, "to": new}


@blp.route("/<int:document_id>/versions/<int:number>/restore")
class Restore(MethodView):
    @blp.arguments(schemas.RestoreIn)
    @blp.response(201, schemas.VersionOut)
    def post(self, body, document_id, number):
        """Restore a version: its content and metadata become a new version (nothing is overwritten)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            version = library.restore(s, user, document_id, number, body.get("change_note"))
            return versions_out(s, [version])[0]


@blp.route("/<int:document_id>/shares")
class Shares(MethodView):
    @blp.response(200, schemas.ShareList)
    def get(self, document_id):
        """Who the document is shared with (owner and department administrators)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            return {"items": shares_out(s, sharing.shares(s, user, document_id))}

    @blp.arguments(schemas.ShareIn)
    @blp.response(201, schemas.ShareOut)
    def post(self, body, document_id):
        """Share with a user or a department, `read` or `edit`, optionally until `expires_at`
        (R-DOC-4). A 核心机密 document refuses every share: 409 `core_secret_not_shareable`."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            row = sharing.share(s, user, document_id, username=body.get("username"),
                                department=body.get("department"), permission=body["permission"],
                                expires_at=body.get("expires_at"))
            return shares_out(s, [row])[0]


@blp.route("/<int:document_id>/shares/<int:share_id>")
class ShareResource(MethodView):
    @blp.response(204)
    def delete(self, document_id, share_id):
        """Withdraw a share."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            sharing.unshare(s, user, document_id, share_id)


@blp.route("/<int:document_id>/break-glass")
class BreakGlass(MethodView):
    @blp.arguments(schemas.BreakGlassIn)
    @blp.response(201, schemas.BreakGlassOut)
    def post(self, body, document_id):
        """Emergency read access to a document above the caller's clearance (system administrators,
        with a mandatory reason): read-only for one hour, audited, the owner's department head told."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            grant = break_glass.break_glass(s, user, document_id, body["reason"])
            return {"document_id": grant.document_id, "reason": grant.reason, "granted_at": grant.granted_at,
                    "expires_at": grant.expires_at}


# --- administration ----------------------------------------------------------------------------

@blp.route("/clearances")
class Clearances(MethodView):
    @blp.response(200, schemas.ClearanceList)
    def get(self):
        """Every active user's clearance (system administrators)."""
        user = auth.current_user()
        s = db.session()
        return {"items": [{"username": u.username, "level": level_name(level)}
                          for u, level in administration.clearances(s, user)]}


@blp.route("/clearances/<string:username>")
class ClearanceResource(MethodView):
    @blp.arguments(schemas.ClearanceIn)
    @blp.response(200, schemas.ClearanceOut)
    def put(self, body, username):
        """Set a user's clearance (system administrators; never their own; audited)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            target, level = administration.set_clearance(s, user, username, body["level"])
            return {"username": target.username, "level": level_name(level)}


@blp.route("/business-types")
class BusinessTypes(MethodView):
    @blp.response(200, schemas.BusinessTypeList)
    def get(self):
        """The business-type tree (each with its parent's code)."""
        auth.current_user()
        s = db.session()
        rows = administration.business_types(s)
        codes = {r.id: r.code for r in rows}
        return {"items": [{"code": r.code, "name": r.name, "parent": codes.get(r.parent_id)} for r in rows]}

    @blp.arguments(schemas.BusinessTypeIn)
    @blp.response(201, schemas.BusinessTypeOut)
    def post(self, body):
        """Add a business type (platform management department, system administrators)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            row = administration.create_business_type(s, user, body["code"], body["name"], body.get("parent"))
            return {"code": row.code, "name": row.name, "parent": body.get("parent")}


@blp.route("/business-types/<string:code>")
class BusinessTypeResource(MethodView):
    @blp.arguments(schemas.BusinessTypePatch)
    @blp.response(200, schemas.BusinessTypeOut)
    def patch(self, body, code):
        """Rename a business type or move it in the tree."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            row = administration.update_business_type(s, user, code, body.get("name"), body.get("parent"),
                                                      move="parent" in body)
            parent = s.get(BusinessType, row.parent_id) if row.parent_id else None
            return {"code": row.code, "name": row.name, "parent": parent.code if parent else None}


@blp.route("/archive")
class Archive(MethodView):
    @blp.arguments(schemas.ArchiveIn)
    @blp.response(200, schemas.IdList)
    def post(self, body):
        """Archive every active document older than the policy age (or `older_than_days`):
        read-only from then on, still searchable (R-DOC-3)."""
        user = auth.current_user()
        administration.require_taxonomy_admin(user)
        with db.unit_of_work() as s:
            ids = lifecycle.archive_due(s, user, body.get("older_than_days"))
            return {"ids": ids, "count": len(ids)}


@blp.route("/purge")
class Purge(MethodView):
    @blp.response(200, schemas.IdList)
    def post(self):
        """Purge deleted documents past their retention, then orphaned blobs (system administrators)."""
        user = auth.current_user()
        administration.require_system_admin(user)
        with db.unit_of_work() as s:
            ids = lifecycle.purge_expired(s, user)
        lifecycle.sweep_orphans(db.session())
        return {"ids": ids, "count": len(ids)}


@blp.route("/keys/rotate")
class RotateKey(MethodView):
    @blp.response(200, schemas.RotationOut)
    def post(self):
        """Re-wrap every document data key under a new master key (system administrators)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            return administration.rotate_master_key(s, user)

