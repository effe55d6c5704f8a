"""Tables for spreadsheets: CSV (UTF-8 with a byte-order mark, so Excel reads Chinese) and XLSX
(openpyxl). Text that a spreadsheet would run as a formula is defused with a leading quote."""
from __future__ import annotations

import csv
import io
from urllib.parse import quote

from flask_babel import lazy_gettext as N_

COLUMNS = [
    ("level", N_("Level")), ("department", N_("Department")), ("name", N_("Name")),
    ("username", N_("Username")), ("usage_rate", N_("Usage rate")),
    ("timeliness_rate", N_("Timeliness rate")), ("first_pass_rate", N_("First-time pass rate")),
    ("approval_pass_rate", N_("Approval pass rate")),
    ("security_incident_rate", N_("Security incidents per 100 users")), ("active_users", N_("Active users")),
    ("due_tasks", N_("Tasks with a due date")), ("late_tasks", N_("Late tasks")),
    ("submissions", N_("Requests decided")), ("approval_decisions", N_("Approval decisions")),
    ("security_incidents", N_("Security incidents")),
    ("reference_score", N_("Reference score")),
]
MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def disposition(file_name: str) -> str:
    """A Content-Disposition naming the file: an ASCII fallback and the UTF-8 name (RFC 6266), so a
    name built from user input can neither break the header nor be lost."""
    ascii_name = "".join(c for c in file_name if 32 <= ord(c) < 127 and c not in '"\\') or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def _safe(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render(rows: list[dict], fmt: str, columns: list | None = None) -> tuple[bytes, str]:
    """The rows as a sheet; `columns` (key, label) default to the indicator table's."""
    columns = COLUMNS if columns is None else columns
    header = [str(label) for _key, label in columns]
    table = [[_safe(row.get(key)) for key, _label in columns] for row in rows]
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.append(header)
        for line in table:
            sheet.append(line)
        out = io.BytesIO()
        book.save(out)
        return out.getvalue(), MIMETYPES["xlsx"]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in line] for line in table])
    return ("\ufeff" + text.getvalue()).encode("utf-8"), MIMETYPES["csv"]
