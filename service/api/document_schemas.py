"""The document library's API shapes (service/api/documents.py)."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from ..bounds import Integer
from ..documents.models import LEVELS, STATES
from .schemas import ListArgs


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


class DocumentArgs(ListArgs):
    business_type = fields.String(validate=validate.Length(max=64),
                                  metadata={"description": "code; includes the types below it"})
    department = fields.String(validate=validate.Length(max=64), metadata={"description": "department code"})
    security_level = fields.String(validate=validate.OneOf(LEVELS))
    date_from = fields.Date()
    date_to = fields.Date()
    state = fields.String(validate=validate.OneOf((*STATES, "current")), load_default="current",
                          metadata={"description": "current = active and archived; deleted = the trash"})
    mine = fields.Boolean(metadata={"description": "only documents I own"})
    shared_with_me = fields.Boolean()
    published = fields.Boolean()


class SearchArgs(DocumentArgs):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))


class Permissions(Schema):
    read = fields.Boolean()
    edit = fields.Boolean()
    manage = fields.Boolean()


class DocumentOut(Schema):
    id = fields.Integer()
    title = fields.String()
    abstract = fields.String()
    keywords = fields.List(fields.String())
    business_type = fields.String(allow_none=True)
    department = fields.String()
    document_date = fields.Date(allow_none=True)
    security_level = fields.String()
    state = fields.String()
    owner = fields.String()
    current_version = fields.Integer()
    file_name = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    encrypted = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    archived_at = fields.DateTime(allow_none=True)
    deleted_at = fields.DateTime(allow_none=True)
    purge_after = fields.DateTime(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    audience = fields.String(allow_none=True)
    permissions = fields.Nested(Permissions)
    rank = fields.Float(metadata={"description": "search relevance, lower is better"})


class DocumentList(Schema):
    items = fields.List(fields.Nested(DocumentOut))
    total = fields.Integer()


class VersionOut(Schema):
    number = fields.Integer()
    file_name = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    change_note = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    restored_from = fields.Integer(allow_none=True)
    title = fields.String()
    abstract = fields.String()
    keywords = fields.List(fields.String())
    business_type = fields.String(allow_none=True)
    department = fields.String()
    document_date = fields.Date(allow_none=True)
    security_level = fields.String()
    encrypted = fields.Boolean()
    algorithm = fields.String()


class VersionList(Schema):
    document_id = fields.Integer()
    items = fields.List(fields.Nested(VersionOut))


class RestoreIn(_In):
    change_note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class DiffArgs(_In):
    against = Integer(minimum=1, metadata={"description": "default: the previous version"})


class Change(Schema):
    field = fields.String()
    from_ = fields.Raw(data_key="from")
    to = fields.Raw()


class DiffOut(Schema):
    from_version = fields.Integer()
    to_version = fields.Integer()
    changes = fields.List(fields.Nested(Change))
    content_changed = fields.Boolean()


class ShareIn(_In):
    username = fields.String(load_default=None, allow_none=True)
    department = fields.String(load_default=None, allow_none=True)
    permission = fields.String(required=True, validate=validate.OneOf(("read", "edit")))
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=None)


class ShareOut(Schema):
    id = fields.Integer()
    username = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    permission = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()


class ShareList(Schema):
    items = fields.List(fields.Nested(ShareOut))


class ClearanceIn(_In):
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))


class ClearanceOut(Schema):
    username = fields.String()
    level = fields.String()


class ClearanceList(Schema):
    items = fields.List(fields.Nested(ClearanceOut))


class BusinessTypeIn(_In):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    parent = fields.String(load_default=None, allow_none=True)


class BusinessTypePatch(_In):
    name = fields.String(validate=validate.Length(min=1, max=200))
    parent = fields.String(allow_none=True, metadata={"description": "new parent code; null moves it to the top"})


class BusinessTypeOut(Schema):
    code = fields.String()
    name = fields.String()
    parent = fields.String(allow_none=True)


class BusinessTypeList(Schema):
    items = fields.List(fields.Nested(BusinessTypeOut))


class ArchiveIn(_In):
    # A cut-off before year 1 is no date at all; a thousand years reaches every document.
    older_than_days = Integer(load_default=None, allow_none=True, minimum=0, maximum=366_000)


class IdList(Schema):
    ids = fields.List(fields.Integer())
    count = fields.Integer()


class RotationOut(Schema):
    key_id = fields.String()
    rewrapped = fields.Integer()


UPLOAD_FIELDS = {
    "file": {"type": "string", "format": "binary", "description": "PDF, DOCX or UTF-8 text (sniffed from the bytes)"},
    "title": {"type": "string", "maxLength": 200},
    "abstract": {"type": "string", "maxLength": 4000},
    "keywords": {"type": "string", "description": "separated by , ， 、 ; or new lines"},
    "business_type": {"type": "string", "description": "business type code"},
    "department": {"type": "string", "description": "department code (default: yours)"},
    "document_date": {"type": "string", "format": "date"},
    "security_level": {"type": "string", "enum": list(LEVELS),
                       "description": "send it before the file so 公开/内部 files are not encrypted on arrival"},
}
UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": UPLOAD_FIELDS,
    "required": ["file", "title", "abstract", "keywords", "security_level"]}}}}
VERSION_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": dict(UPLOAD_FIELDS, change_note={"type": "string", "maxLength": 2000}),
    "required": ["change_note"]}}}}


class BreakGlassIn(_In):
    reason = fields.String(required=True, validate=validate.Length(max=2000))


class BreakGlassOut(Schema):
    document_id = fields.Integer()
    reason = fields.String()
    granted_at = fields.DateTime()
    expires_at = fields.DateTime()
