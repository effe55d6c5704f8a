"""Failures of what the platform stands on, named: the database cannot be reached, the storage is
full, the storage is read-only. Each is a 503 that says so in the user's language (the API's JSON
problem, or a page), never a 500 that looks like a bug, and is logged as one line that holds
neither SQL nor its parameters (R-SEC-2: no secrets in logs; R-OPS-3: a fault says what it is).

Anything else a database or the file system raises stays what it was: a bug, a 500.
"""
from __future__ import annotations

import errno
import logging
import re
import sqlite3
from contextlib import nullcontext
from dataclasses import dataclass

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, NoInspectionAvailable

from engine.errors import N_

log = logging.getLogger("inkless.outage")

DATABASE_UNAVAILABLE = "database_unavailable"
STORAGE_FULL = "storage_full"
STORAGE_READ_ONLY = "storage_read_only"
# Only /healthz names it: the data directory cannot be written for another reason (it is gone, …).
STORAGE_UNAVAILABLE = "storage_unavailable"

MESSAGES = {
    DATABASE_UNAVAILABLE: N_("The database cannot be reached or opened, so the platform cannot work for now. "
                             "Try again in a few minutes; if this lasts, tell the system administrator."),
    STORAGE_FULL: N_("The server's storage is full, so changes cannot be saved. "
                     "Tell the system administrator."),
    STORAGE_READ_ONLY: N_("The server's storage is read-only or not writable, so changes cannot be saved. "
                          "Tell the system administrator."),
    STORAGE_UNAVAILABLE: N_("The server's data directory cannot be written. Tell the system administrator."),
}
# Seconds a client should wait before trying again (only a database that is away comes back by itself).
RETRY_AFTER = {DATABASE_UNAVAILABLE: 30}


@dataclass(frozen=True)
class Outage:
    code: str
    reason: str  # one line for the log and the console: the driver's or the OS's words, no SQL

    def message(self) -> str:
        return _(MESSAGES[self.code])


_SQLITE_CODES = {  # primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF)
    13: STORAGE_FULL,          # SQLITE_FULL
    8: STORAGE_READ_ONLY,      # SQLITE_READONLY
    14: DATABASE_UNAVAILABLE,  # SQLITE_CANTOPEN
    10: DATABASE_UNAVAILABLE,  # SQLITE_IOERR: the file went away or the device failed
    26: DATABASE_UNAVAILABLE,  # SQLITE_NOTADB: the path holds something else
}
_SQLITE_MESSAGES = {
    "database or disk is full": STORAGE_FULL,
    "attempt to write a readonly database": STORAGE_READ_ONLY,
    "unable to open database file": DATABASE_UNAVAILABLE,
    "disk i/o error": DATABASE_UNAVAILABLE,
    "file is not a database": DATABASE_UNAVAILABLE,
}
_OS_ERRNOS = {
    errno.ENOSPC: STORAGE_FULL,
    errno.EDQUOT: STORAGE_FULL,
    errno.EROFS: STORAGE_READ_ONLY,
    errno.EACCES: STORAGE_READ_ONLY,
    errno.EPERM: STORAGE_READ_ONLY,
}


def classify(error: BaseException) -> Outage | None:
    """The outage behind `error`, or None when it is not one (then it is a bug or a bad request)."""
    if isinstance(error, DBAPIError):
        code = _driver_code(error.orig)
        if code is None and error.connection_invalidated:
            code = DATABASE_UNAVAILABLE
        return Outage(code, reason(error.orig)) if code else None
    if isinstance(error, sqlite3.Error) or _is_psycopg(error):
        code = _driver_code(error)
        return Outage(code, reason(error)) if code else None
    if isinstance(error, OSError) and error.errno in _OS_ERRNOS:
        return Outage(_OS_ERRNOS[error.errno], reason(error))
    return None


def _driver_code(orig: BaseException) -> str | None:
    if isinstance(orig, sqlite3.Error):
        number = getattr(orig, "sqlite_errorcode", None)
        if number is not None and (number & 0xFF) in _SQLITE_CODES:
            return _SQLITE_CODES[number & 0xFF]
        text = str(orig).strip().lower()
        return next((code for words, code in _SQLITE_MESSAGES.items() if text.startswith(words)), None)
    if _is_psycopg(orig):
        return _postgres_code(orig)
    return None


def _is_psycopg(error: BaseException) -> bool:
    return type(error).__module__.startswith("psycopg")


def _postgres_code(orig: BaseException) -> str | None:
    import psycopg

    state = getattr(orig, "sqlstate", None) or ""
    if state == "53100":  # disk_full
        return STORAGE_FULL
    if state == "25006":  # read_only_sql_transaction: a standby, or default_transaction_read_only
        return STORAGE_READ_ONLY
    # connection_exception (08…), the server shutting down or starting (57P01-03), no free slot (53300)
    if state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300"):
        return DATABASE_UNAVAILABLE
    # No SQLSTATE: libpq itself failed (refused, reset, timed out, the server closed the connection).
    if not state and isinstance(orig, psycopg.OperationalError):
        return DATABASE_UNAVAILABLE
    return None


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


def reason(error: BaseException) -> str:
    """The first line of what the driver or the OS said, with any password in it masked."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text))
    return text[:300]


def _user_locale() -> str | None:
    """The signed-in user's language if it is already in memory: after a failed transaction the
    user row is expired, and loading it again would ask the database that just failed."""
    user = g.get("user")
    if user is None:
        return None
    try:
        return sa_inspect(user).dict.get("locale")
    except NoInspectionAvailable:  # not a row (a stand-in in a test): no preference to honour
        return None


def _is_page() -> bool:
    return "pages" in (request.blueprints or ())


def respond(found: Outage):
    """The 503 for `found`: the API's problem body, or a page for the workspace."""
    log.warning("%s %s: %s (%s)", request.method, request.path, found.code, found.reason)
    locale = _user_locale()
    g.user = None  # the page header would ask the database for the user's menu and unread count
    with force_locale(locale) if locale else nullcontext():
        message = found.message()
        if _is_page():
            body = render_template("unavailable.html", message=message)
        else:
            body = jsonify({"code": found.code, "message": message, "details": None})
    response = make_response(body, 503)
    if found.code in RETRY_AFTER:
        response.headers["Retry-After"] = str(RETRY_AFTER[found.code])
    return response


def register(app: Flask) -> None:
    @app.errorhandler(DBAPIError)
    def _database(e: DBAPIError):
        found = classify(e)
        if found is None:
            raise e  # not an outage: Flask's own handling (logged, 500) as before
        return respond(found)

    @app.errorhandler(OSError)
    def _storage(e: OSError):
        found = classify(e)
        if found is None:
            raise e
        return respond(found)
