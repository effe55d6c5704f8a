"""Security keys (WebAuthn) as the alternative second factor (R-SEC-6), checked with a software
authenticator that signs real ES256 assertions (tests/service/soft_authenticator.py)."""
from __future__ import annotations

from tests.conftest import PASSWORD
from tests.service.soft_authenticator import SoftKey
from tests.service.test_pages import Browser, text


def _json(b: Browser, url: str, body=None):
    return b.client.post(url, json=body or {}, headers={"X-CSRF-Token": b.csrf})


def _register(app, username: str) -> tuple[Browser, SoftKey, dict]:
    b = Browser(app)
    b.sign_in(username)
    b.get("/account/mfa")
    key = SoftKey()
    options = _json(b, "/account/keys/options").get_json()
    assert options["rp"]["id"] == "localhost" and options["challenge"]
    r = _json(b, "/account/keys", {"name": "YubiKey", "credential": key.create(options)})
    assert r.status_code == 200, r.get_json()
    return b, key, r.get_json()


def _pending(app, username: str) -> Browser:
    b = Browser(app)
    b.get("/signin")
    assert b.post("/signin", {"username": username, "password": PASSWORD}).headers["Location"].startswith("/signin/code")
    page = text(b.get("/signin/code"))
    assert 'data-webauthn="sign-in"' in page
    return b


def test_a_security_key_is_registered_and_signs_in(app, org):
    """R-SEC-6: registration from the profile, then password + key; the first factor brings recovery codes."""
    b, key, answer = _register(app, "clerk")
    assert len(answer["codes"]) == 10 and answer["next"] == "/account"
    assert "YubiKey" in text(b.get("/account"))
    assert b.get("/account/mfa").status_code == 200  # an authenticator app may be added beside the key
    p = _pending(app, "clerk")
    options = _json(p, "/signin/key/options").get_json()
    assert [c["id"] for c in options["allowCredentials"]] == [key.create(options)["id"]]
    r = _json(p, "/signin/code", key.get(options))
    assert r.status_code == 200 and r.get_json()["next"] == "/"
    assert p.get("/").status_code == 200
    # A recovery code still works instead of the key.
    q = _pending(app, "clerk")
    assert q.post("/signin/code", {"code": answer["codes"][0]}).status_code == 302


def test_replayed_cloned_or_unasked_key_answers_are_refused(app, org):
    """A challenge answers once; a sign counter that does not grow (a cloned key) is refused."""
    _b, key, _answer = _register(app, "clerk")
    p = _pending(app, "clerk")
    options = _json(p, "/signin/key/options").get_json()
    used = key.get(options)
    assert _json(p, "/signin/code", used).status_code == 200
    again = _pending(app, "clerk")
    assert _json(again, "/signin/code", used).status_code == 401  # no challenge was asked for
    options = _json(again, "/signin/key/options").get_json()
    assert _json(again, "/signin/code", used).status_code == 401  # another challenge
    assert _json(again, "/signin/code", key.get(options, count=1)).status_code == 401  # challenge spent
    options = _json(again, "/signin/key/options").get_json()
    assert _json(again, "/signin/code", key.get(options, count=1)).status_code == 401  # counter went back
    options = _json(again, "/signin/key/options").get_json()
    stranger = SoftKey()
    stranger.credential_id = key.credential_id  # the right id, the wrong private key
    assert _json(again, "/signin/code", stranger.get(options, count=50)).status_code == 401
    # Five refused answers end the pending sign-in (and, as failed sign-ins, lock the account).
    assert _json(again, "/signin/key/options").status_code == 401


def test_a_key_satisfies_the_enrolment_policy_and_is_removed_with_password_and_code(app, org):
    """R-SEC-6: an administrator obliged to enrol may choose a key; removal needs password and code."""
    app.config["INKLESS"].mfa_enforced = True
    b, _key, answer = _register(app, "office_admin")
    assert b.get("/").status_code == 200
    page = text(b.get("/account"))
    key_id = page.split('action="/account/keys/')[1].split("/")[0]
    b.post(f"/account/keys/{key_id}/remove", {"password": PASSWORD, "code": "000000"})
    assert "YubiKey" in text(b.get("/account"))
    assert b.post(f"/account/keys/{key_id}/remove", {"password": PASSWORD, "code": answer["codes"][1]}).status_code == 302
    assert "YubiKey" not in text(b.get("/account"))
    assert b.get("/").headers["Location"].startswith("/account/mfa")  # obliged again


def test_malformed_key_answers_are_refused_not_crashes(app, org):
    """Errors are 4xx with a message naming the field, never a 500."""
    b = Browser(app)
    b.sign_in("clerk")
    b.get("/account")
    _json(b, "/account/keys/options")
    for junk in ({}, {"credential": {"id": "x", "response": {}}}, {"credential": "not json"}):
        r = _json(b, "/account/keys", junk)
        assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "credential"
    _register(app, "office_head")
    p = _pending(app, "office_head")
    _json(p, "/signin/key/options")
    for junk in ({"id": 5}, {"id": "x", "response": {"signature": "!!"}}):
        assert _json(p, "/signin/code", junk).status_code == 401
