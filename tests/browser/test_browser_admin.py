"""The admin screen in Chromium: an admin signs in, sees the audit trail with the tamper
check OK, downloads the CSV, and opens the users list; axe-core finds no serious or
critical problem on either page."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from intake import state
from intake.auth.users import create_user
from intake.storage.models import utcnow
from support.browser import LANDSCAPE, SHOTS, Audit, shoot

pytestmark = pytest.mark.slow

NAME = "admin-browser"
PASSWORD = "Admin-screen-2026"


def _admin(app: Any) -> None:
    with app.app_context(), state(app).sessions.begin() as s:
        create_user(s, NAME, "admin", PASSWORD, actor="cli", now=utcnow())


def test_admin_sees_the_trail_and_downloads_the_csv(stack: Any, new_page: Any, audit: Audit,
                                                    tmp_path: Path) -> None:
    _admin(stack.main.app)
    page = new_page(LANDSCAPE)
    page.goto(f"{stack.main.base}/admin?lang=ja")
    assert "/auth/signin" in page.url  # not signed in: to the sign-in form, then back
    page.fill("#f-name", NAME)
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="サインイン").click()
    assert re.search(r"/admin\?lang=ja$", page.url), page.url

    status = page.locator("#chain-status")
    assert status.get_attribute("data-ok") == "true"
    assert "改ざんは検出されませんでした" in status.inner_text()
    rows = page.locator("#events tr[data-event-id]")
    assert rows.count() >= 3  # user.created, signin.succeeded, audit.viewed at least
    newest = rows.first.inner_text()
    assert "audit.viewed" in newest and NAME in newest and "127.0.0.1" in newest
    assert page.get_by_role("heading", name="監査ログ").is_visible()
    audit.check(page, "admin-audit")
    shoot(page, "admin-audit", both=False)
    page.screenshot(path=str(SHOTS / "admin-audit-full.png"), full_page=True)

    with page.expect_download() as download:
        page.locator("#download-csv").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.csv", saved.name)
    table = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert table[0][:4] == ["id", "time_utc", "actor", "action"]
    mine = [r for r in table[1:] if r[2] == NAME]
    assert {"signin.succeeded", "audit.viewed"} <= {r[3] for r in mine}

    page.get_by_role("link", name="ユーザー").click()
    page.wait_for_url("**/admin/users**")
    user_row = page.locator(f"tr[data-user='{NAME}']").inner_text()
    assert "管理者" in user_row and "有効" in user_row
    assert "intake users" in page.locator("main").inner_text()
    audit.check(page, "admin-users")
    shoot(page, "admin-users", both=False)

    page.get_by_role("link", name="監査ログ").click()
    page.wait_for_url("**/admin?**")
    assert "audit.exported" in page.locator("#events").inner_text()  # the download too
    audit.assert_clean()
