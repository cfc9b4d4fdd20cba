"""Strings of the sign-in pages and of every staff page (the frame, the error page,
words the filters of the worklist and the audit trail share), Japanese and English."""

from __future__ import annotations

from intake.kiosk.i18n import KIOSK
from intake.web.i18n import Catalog

CATALOG: dict[str, tuple[str, str]] = {
    "signin_title": ("スタッフのサインイン", "Staff sign-in"),
    "name_label": ("ユーザー名", "User name"),
    "password_label": ("パスワード", "Password"),
    "signin": ("サインイン", "Sign in"),
    "signout": ("サインアウト", "Sign out"),
    "err_signin": ("ユーザー名またはパスワードが違います。",
                   "The user name or password is wrong."),
    "err_signin_locked": ("サインインの失敗が続いたため、{m}分間サインインできません。",
                   "Too many failed sign-ins: try again in {m} minutes."),
    "err_input": ("ユーザー名とパスワードを入力してください。",
                  "Enter your user name and password."),
    "signed_out": ("サインアウトしました。", "You have signed out."),
    "timed_out": ("一定時間操作がなかったため、サインアウトしました。",
                  "You were signed out after a period without activity."),
    "forbidden_title": ("このページを表示する権限がありません",
                        "You do not have access to this page"),
    "forbidden_body": ("別の役割のユーザーでサインインしてください。",
                       "Sign in as a user with another role."),
    "page_error_title": ("エラーが発生しました", "Something went wrong"),
    "not_found_title": ("ページが見つかりません", "Page not found"),
    "signed_out_title": ("サインインしてください", "Please sign in"),
    "form_expired_title": ("画面の有効期限が切れました。もう一度お試しください。",
                           "This form has expired. Please try again."),
    "to_signin": ("サインイン画面へ", "Go to sign-in"),
    "nav_review": ("ワークリスト", "Worklist"),
    "nav_desk": ("受付", "Front desk"),
    "nav_admin": ("管理", "Admin"),
    "role_practitioner": ("医療者", "practitioner"),
    "role_front_desk": ("受付", "front desk"),
    "role_admin": ("管理者", "admin"),
    "idle_warning": ("操作がないため、まもなくサインアウトします。"
                     "続けるには画面を操作してください。",
                     "You will be signed out soon for inactivity. Use the page to stay "
                     "signed in."),
    # the filters of the worklist and of the audit trail
    "filters_title": ("絞り込み", "Filters"),
    "f_page": ("ページ", "Page"),
    "bad_filter_title": ("絞り込み条件が正しくありません", "A filter is not valid"),
}

# The staff pages' strings, then the tablet's (the language switch and what every screen
# shares).
STAFF = Catalog("auth", CATALOG, KIOSK)
