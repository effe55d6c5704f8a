"""No 500 from any input (issue 13): malformed JSON, integers past 2^63, bad zips, unbounded task
data. Each answer has the error shape {code, message, details}, names the field, Chinese by
default and English with ?lang=en."""
from __future__ import annotations

import io
import json
import zipfile

HUGE = "99999999999999999999"


def _json_routes(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method != "parameters" and "application/json" in (op.get("requestBody") or {}).get("content", {}):
                yield method.upper(), path.replace("{", "<").replace("}", ">")


def _fill(path: str) -> str:
    import re
    return re.sub(r"<[^>]+>", "1", path)


def test_malformed_json_is_400_on_every_json_route(app, login):
    admin = login("sysadmin")
    wrong = {}
    routes = list(_json_routes(app))
    assert len(routes) > 20
    for method, path in routes:
        r = admin.client.open(_fill(path), method=method, data="{", content_type="application/json",
                              headers=admin._headers())
        body = r.get_json()
        if r.status_code != 400 or body["code"] != "invalid_json" or body["details"][0]["field"] != "body":
            wrong[(method, path)] = (r.status_code, body)
    assert not wrong
    r = admin.client.post("/api/v1/process-instances?lang=en", data="{", content_type="application/json",
                          headers=admin._headers())
    assert r.get_json()["message"] == "The request body is not valid JSON."
    r = admin.client.post("/api/v1/process-instances", data="{", content_type="application/json",
                          headers=admin._headers())
    assert r.get_json()["message"] == "请求正文不是有效的 JSON。"


def test_a_list_or_a_string_body_is_422_naming_the_body(login):
    admin = login("sysadmin")
    for body in ("[1]", '"x"'):
        r = admin.client.post("/api/v1/process-instances", data=body, content_type="application/json",
                              headers=admin._headers())
        assert r.status_code == 422 and r.get_json()["details"] == [{"field": "body", "message": "必须是 JSON 对象"}]


def test_integers_past_the_integer_columns_in_paths_are_404_and_in_queries_422(app, login):
    admin = login("sysadmin")
    int_rules = [r.rule for r in app.url_map.iter_rules() if "<int:" in r.rule and r.rule.startswith("/api/")]
    assert int_rules
    import re
    for rule in int_rules:
        for method in ("GET", "POST", "DELETE"):
            url = re.sub(r"<(?!int:)[^>]+>", "x", re.sub(r"<int:[^>]+>", HUGE, rule))
            r = admin.client.open(url, method=method, headers=admin._headers())
            assert r.status_code in (404, 405), (rule, method, r.status_code)
    for url, field in (("/api/v1/tasks?offset=6564593921807456454207078400", "offset"),
                       ("/api/v1/notifications?limit=" + HUGE, "limit"),
                       ("/api/v1/tasks?instance_id=" + HUGE, "instance_id"),
                       ("/api/v1/process-definitions/x/xml?version=" + HUGE, "version")):
        r = admin.get(url)
        assert r.status_code == 422, (url, r.get_json())
        assert r.get_json()["details"][0]["field"] == field
    # Past PostgreSQL's INTEGER though SQLite would hold it, and the last one that fits.
    for number, status in (("9223372036854775807", 404), ("2147483648", 404), ("2147483647", 404)):
        assert admin.get("/api/v1/process-instances/" + number).status_code == status
    r = admin.get("/api/v1/tasks?instance_id=2147483648")
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "instance_id"
    assert admin.get("/api/v1/tasks?instance_id=2147483647").status_code == 200


def test_task_data_too_big_too_deep_or_unstorable(login):
    admin = login("office_admin")
    post = admin.post
    big = post("/api/v1/process-instances", json={"process_key": "account_application",
                                                   "data": {"x": "a" * (1024 * 1024 + 10)}})
    assert big.status_code == 413 and big.get_json()["details"][0]["field"] == "data"
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    r = post("/api/v1/process-instances", json={"process_key": "account_application", "data": deep})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"].startswith("data.a.a")
    very_deep = "[" * 100000 + "]" * 100000
    r = admin.client.post("/api/v1/process-instances", data='{"process_key": "x", "data": {"a": ' + very_deep + "}}",
                          content_type="application/json", headers=admin._headers())
    assert r.status_code == 422
    for value in ("a\x00b", "\ud800"):
        r = admin.client.post("/api/v1/process-instances?lang=en", content_type="application/json",
                              data=json.dumps({"process_key": "account_application", "data": {"name": value}}),
                              headers=admin._headers())
        assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "data.name"
    r = admin.client.post("/api/v1/process-instances", data='{"process_key": "x", "data": {"n": NaN}}',
                          content_type="application/json", headers=admin._headers())
    assert r.status_code == 400


def _zip(entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return out.getvalue()


def test_bad_zip_packages_are_422_naming_the_problem(app):
    from service.errors import Invalid
    from service.studio import package

    good = _zip({"m.bpmn": b"<x/>" * 100})
    bad_crc = bytearray(good)
    start = bad_crc.index(b"m.bpmn") + len(b"m.bpmn")
    bad_crc[start + 2] ^= 0xFF
    encrypted = bytearray(good)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = encrypted.index(header)
        encrypted[at + (6 if header == b"PK\x03\x04" else 8)] |= 1
    unknown = bytearray(good)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = unknown.index(header)
        unknown[at + (8 if header == b"PK\x03\x04" else 10)] = 99
    bomb = _zip({"m.bpmn": b"\0" * (6 * 1024 * 1024)})
    with app.test_request_context("/?lang=en"):
        for content, words in ((b"not a zip", "not a zip"), (bytes(bad_crc), "damaged"),
                               (bytes(encrypted), "encrypted"), (bytes(unknown), "compression method 99"),
                               (bomb, "too large")):
            try:
                package.read(content)
            except Invalid as e:
                assert e.details[0]["field"] == "file"
                assert words in e.details[0]["message"], (words, e.details)
            else:
                raise AssertionError(words)


def test_error_schema_in_openapi_is_what_the_api_sends(client):
    spec = client.get("/api/openapi.json").get_json()
    error = spec["components"]["schemas"]["ErrorOut"]
    assert error["properties"]["code"]["type"] == "string" and "details" in error["properties"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method == "parameters":
                continue
            assert any(c.startswith("2") for c in op["responses"]), (method, path)


def test_a_query_past_4_kb_is_a_json_414_and_odd_periods_never_break_a_download(login):
    """Found by the API fuzzer (CI): a long query got the front server's HTML, and a period with
    control characters made an invalid Content-Disposition header (a 500)."""
    admin = login("sysadmin")
    r = admin.get("/api/v1/documents/search?q=" + "%F2%AD%89%BB" * 400)
    assert r.status_code == 414 and r.get_json()["details"][0]["field"] == "query"
    r = admin.get("/api/v1/performance-records/export?format=csv&period=%C3%A2%F2%90%9C%958Q%C3%A51")
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "period"
    r = admin.get("/api/v1/performance-records/export?format=csv&period=2026-Q4")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=\"performance-2026-Q4.csv\"; filename*=UTF-8''performance-2026-Q4.csv")


def test_a_download_name_with_control_characters_or_chinese_is_a_valid_header():
    from service.exports import disposition

    header = disposition("报告\r\n\x15\"x\".pdf")
    assert header.startswith('attachment; filename="x.pdf"; filename*=UTF-8\'\'')
    assert all(32 <= ord(c) < 127 for c in header)
    assert disposition("档案") == "attachment; filename=\"download\"; filename*=UTF-8''%E6%A1%A3%E6%A1%88"
