"""Strings of the enrollment page (Japanese, English); then the staff pages'
(:data:`intake.auth.i18n.STAFF`)."""

from __future__ import annotations

from intake.auth.i18n import STAFF
from intake.web.i18n import Catalog

CATALOG: dict[str, tuple[str, str]] = {
    "enroll_title": ("この端末の登録", "Register this device"),
    "enroll_intro": ("この端末はまだ登録されていません。管理者から受け取った8桁の登録コードを"
                     "入力してください。",
                     "This device is not registered yet. Enter the 8-digit code you "
                     "received from an administrator."),
    "enroll_intro_board": ("受付ボード(緊急アラートの表示)として使うには、登録が必要です。",
                           "To use this screen as a front-desk alert board, register it."),
    "enroll_intro_tablet": ("患者さん用タブレットとして使うには、登録が必要です。",
                            "To use this device as a patient tablet, register it."),
    "enroll_how": ("コードは管理画面の「端末」(/admin/devices)、またはサーバーで "
                   "`intake devices add 名前 --kind board|tablet` を実行すると表示されます。"
                   "有効期限は15分です。",
                   "An administrator gets the code under Devices (/admin/devices), or "
                   "on the server with `intake devices add NAME --kind board|tablet`. "
                   "It is valid for 15 minutes."),
    "enroll_code": ("登録コード(8桁)", "Registration code (8 digits)"),
    "enroll_submit": ("登録する", "Register"),
    "enroll_wrong": ("登録コードが正しくないか、有効期限が切れています。",
                     "The code is wrong or has expired."),
    "enroll_locked": ("失敗が続いたため、{m}分間登録できません。",
                      "Too many wrong codes: registration is locked for {m} minutes."),
}

DEVICES = Catalog("devices", CATALOG, STAFF)
