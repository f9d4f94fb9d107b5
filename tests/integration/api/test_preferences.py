"""GET/PUT /whoami/preferences on SQLite and PostgreSQL: per principal, validated (field and allowed values
named, nothing written), audited, and any signed-in caller may keep its own."""

from __future__ import annotations

from tests.conftest import Api

PATH = "/api/v1/whoami/preferences"


def test_preferences_are_kept_per_principal_and_audited(api: Api) -> None:
    dana = api.token_for("dana", ("read",))
    assert api.http.get(PATH, headers=dana).json() == {"language": None}

    r = api.http.put(PATH, json={"language": "zh-CN"}, headers=dana)
    assert r.status_code == 200, r.text
    assert r.json() == {"language": "zh-CN"}
    # another token of the same principal sees it; another principal does not
    assert api.http.get(PATH, headers=api.token_for("dana", ("read", "write"))).json() == {
        "language": "zh-CN"
    }
    assert api.http.get(PATH, headers=api.admin).json() == {"language": None}

    r = api.http.put(PATH, json={"language": "en"}, headers=dana)
    assert r.json() == {"language": "en"}
    assert api.http.put(PATH, json={}, headers=dana).json() == {"language": "en"}  # left out: kept

    events = api.http.get("/api/v1/audit", params={"action": "preferences.update"}, headers=api.admin).json()
    rows = events["items"]
    assert [(e["actor"], e["outcome"]) for e in rows[:3]] == [("dana", "success")] * 3
    assert {"language": "zh-CN"} in [e["detail"] for e in rows]


def test_invalid_preferences_name_the_field_and_write_nothing(api: Api) -> None:
    api.http.put(PATH, json={"language": "zh-CN"}, headers=api.admin)
    r = api.http.put(PATH, json={"language": "fr", "colour": "blue"}, headers=api.admin)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    problems = {p["path"]: p["message"] for p in error["problems"]}
    assert set(problems) == {"language", "colour"}
    assert "'fr' is not allowed; allowed: en, zh-CN" in problems["language"]
    assert "allowed: language" in problems["colour"]
    assert api.http.get(PATH, headers=api.admin).json() == {"language": "zh-CN"}
    assert api.http.get(PATH).status_code == 401
