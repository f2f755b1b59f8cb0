"""Who may read and change the back office, signed in through WeCom OAuth (the stub) as the demo library's
people: a supervisor (王丽, 华东一组) sees statistics, hits and exports of her own team only, asks for another
team and gets nobody, and cannot handle another team's hit (404, as if it did not exist); an admin (赵敏)
sees every team and picks one with `team=`; a staff member (林小雅) is refused (403); the archive relay and
the rules reload are not for a supervisor."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.config import Settings
from tests.conftest import make_hashing_copilot
from tests.dashboard_support import DAYS, archive_week
from tests.signin import SignedIn, oauth_settings, sign_in
from tests.wecom_stub import StubWeCom, running_stub

KEY = "backoffice-roles-operator-key-01"
OPERATOR = {"X-API-Key": KEY}
RANGE = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
EAST1 = {"staff_xiaoya", "staff_xiaolin", "sup_wangli"}
EAST2 = {"staff_chenjing", "staff_anran"}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def client(stub: StubWeCom, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    copilot = make_hashing_copilot(tmp_path_factory.mktemp("backoffice-roles"))
    settings = Settings(data_dir=tmp_path_factory.mktemp("backoffice-roles-app"), api_keys=[SecretStr(KEY)],
                        **oauth_settings(stub))
    with TestClient(create_app(settings, copilot=copilot)) as test_client:
        records = archive_week()
        for start in range(0, len(records), 500):
            test_client.post("/v1/archive/records", json=records[start:start + 500], headers=OPERATOR
                             ).raise_for_status()
        yield test_client


@pytest.fixture(scope="module")
def wangli(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "WangLi")


@pytest.fixture(scope="module")
def zhaomin(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "ZhaoMin")


@pytest.fixture(scope="module")
def xiaoya(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "LinXiaoYa")


def _staff(answer: Any) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {item["staff_id"] for item in answer.json()["items"]}


def test_a_supervisor_sees_her_own_team_only(wangli: SignedIn, client: TestClient) -> None:
    mine = _staff(wangli.get("/v1/stats/staff", params=RANGE))
    assert {"staff_xiaoya", "staff_xiaolin"} <= mine <= EAST1
    by_day = _staff(wangli.get("/v1/stats/staff", params={**RANGE, "group_by": "day"}))
    assert {"staff_xiaoya", "staff_xiaolin"} <= by_day <= mine  # day rows only where there was something
    assert _staff(wangli.get("/v1/stats/staff", params={**RANGE, "team": "华东二组"})) == set()
    hits = _staff(wangli.get("/v1/inspection/hits", params=RANGE))
    assert hits and hits <= EAST1
    assert _staff(wangli.get("/v1/inspection/hits", params={**RANGE, "staff_id": "staff_chenjing"})) == set()
    exported = wangli.get("/v1/stats/staff", params={**RANGE, "format": "csv"})
    assert exported.status_code == 200
    assert {row["staff_id"] for row in csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff")))} == mine
    everyone = _staff(client.get("/v1/stats/staff", params=RANGE, headers=OPERATOR))
    assert everyone >= mine | EAST2  # the same figures exist; she is not shown them


def test_a_supervisor_cannot_handle_another_teams_hit(wangli: SignedIn, client: TestClient) -> None:
    theirs = client.get("/v1/inspection/hits", params={**RANGE, "staff_id": "staff_chenjing"},
                        headers=OPERATOR).json()["items"]
    assert theirs
    answer = wangli.post(f"/v1/inspection/hits/{theirs[0]['id']}/handle", json={})
    assert answer.status_code == 404
    after = client.get("/v1/inspection/hits", params={**RANGE, "staff_id": "staff_chenjing"},
                       headers=OPERATOR).json()["items"]
    assert next(h for h in after if h["id"] == theirs[0]["id"])["status"] == "open"
    own = wangli.get("/v1/inspection/hits", params={**RANGE, "status": "open"}).json()["items"]
    done = wangli.post(f"/v1/inspection/hits/{own[0]['id']}/handle", json={"note": "已提醒"})
    assert done.status_code == 200 and done.json()["status"] == "handled"
    assert "sup_wangli" in done.json()["handled_by"]


def test_an_admin_sees_every_team_and_picks_one(zhaomin: SignedIn) -> None:
    everyone = _staff(zhaomin.get("/v1/stats/staff", params=RANGE))
    assert {"staff_xiaoya", "staff_chenjing", "staff_anran"} <= everyone
    assert _staff(zhaomin.get("/v1/stats/staff", params={**RANGE, "team": "华东二组"})) == EAST2
    assert _staff(zhaomin.get("/v1/inspection/hits", params=RANGE)) & EAST2


def test_staff_and_supervisors_are_refused_what_is_not_theirs(xiaoya: SignedIn, wangli: SignedIn) -> None:
    for path in ("/v1/stats/staff", "/v1/inspection/hits"):
        assert xiaoya.get(path, params=RANGE).status_code == 403
    assert xiaoya.post("/v1/inspection/hits/anything/handle", json={}).status_code == 403
    assert wangli.post("/v1/archive/records", json=[]).status_code == 403
    assert wangli.post("/v1/inspection/reload", json={}).status_code == 403
