"""Personal settings (issue 6): the language of the workspace, kept in the profile (users.locale).

Sign-in security (MFA, sessions) lives elsewhere (/account/security). The choice here is read by
service/i18n.py after an explicit `?lang=` and before the cookie and the browser's languages.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import refresh

from .. import audit, db
from ..errors import Invalid
from ..i18n import SUPPORTED
from ..models import User
from . import signed_in

bp = Blueprint("settings", __name__, url_prefix="/settings")

BROWSER = ""  # no setting: follow the language cookie and the browser


@bp.route("", methods=["GET", "POST"])
@signed_in
def index():
    if request.method == "POST":
        choice = request.form.get("locale", BROWSER)
        if choice != BROWSER and choice not in SUPPORTED:
            raise Invalid(_("Choose a language from the list."), [{"field": "locale", "message": _("Choose a language from the list.")}])
        with db.unit_of_work() as s:
            user = s.get(User, g.user.id)
            user.locale = choice or None
            audit.record(s, "locale_changed", "user", str(user.id), actor_id=user.id, detail={"locale": user.locale})
        g.user.locale = choice or None
        refresh()  # the confirmation below is already in the new language
        flash(_("Your settings have been saved."), "success")
        return redirect(url_for(".index"))
    options = [(BROWSER, _("Follow my browser")), ("zh", "简体中文"), ("en", "English")]
    return render_template("settings.html", options=options, current=g.user.locale or BROWSER)
