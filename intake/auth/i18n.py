"""Strings of the sign-in pages, Japanese and English."""

from __future__ import annotations

from collections.abc import Callable

CATALOG: dict[str, tuple[str, str]] = {
    "signin_title": ("スタッフのサインイン", "Staff sign-in"),
    "name_label": ("ユーザー名", "User name"),
    "password_label": ("パスワード", "Password"),
    "signin": ("サインイン", "Sign in"),
    "signout": ("サインアウト", "Sign out"),
    "err_signin": ("ユーザー名またはパスワードが違います。",
                   "The user name or password is wrong."),
    "err_locked": ("サインインの失敗が続いたため、{m}分間サインインできません。",
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
    "error_title": ("エラーが発生しました", "Something went wrong"),
    "not_found_title": ("ページが見つかりません", "Page not found"),
    "signed_out_title": ("サインインしてください", "Please sign in"),
    "expired_title": ("画面の有効期限が切れました。もう一度お試しください。",
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
}


def translator(lang: str, *catalogs: dict[str, tuple[str, str]]) -> Callable[..., str]:
    """``t(key, **values)`` looking in ``catalogs`` in order, then the tablet/desk
    catalog (common strings such as the language switch)."""
    from intake.kiosk import i18n as base

    def t(key: str, **values: object) -> str:
        for catalog in (*catalogs, CATALOG):
            if key in catalog:
                ja, en = catalog[key]
                text = en if lang == "en" else ja
                return text.format(**values) if values else text
        return base.t(key, lang, **values)

    return t
