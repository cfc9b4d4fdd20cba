"""Strings of the admin pages (/admin), Japanese first, English second; then the staff
pages' (:data:`intake.auth.i18n.STAFF`)."""

from __future__ import annotations

from intake.auth.i18n import STAFF
from intake.web.i18n import Catalog

CATALOG: dict[str, tuple[str, str]] = {
    "admin_title": ("管理", "Admin"),
    "audit_title": ("監査ログ", "Audit trail"),
    "users_title": ("ユーザー", "Users"),
    "devices_title": ("端末", "Devices"),
    "admin_nav_label": ("管理メニュー", "Admin menu"),
    # the chain status
    "chain_title": ("改ざんの検査", "Tamper check"),
    "chain_ok": ("改ざんは検出されませんでした。{n}件の記録を確認しました。",
                 "No tampering detected: {n} events checked."),
    "chain_empty": ("記録はまだありません。", "There are no events yet."),
    "chain_head": ("最新の記録: #{id}、ハッシュ {hash}", "Newest event: #{id}, hash {hash}"),
    "chain_head_note": ("この番号とハッシュを別の場所（紙や別のシステム）に控えておくと、"
                        "この時点までの記録が後から差し替えられていないことを確かめられます。",
                        "Keep this id and hash somewhere else (on paper, in another system): "
                        "they prove later that the trail up to here was not replaced."),
    "chain_unsealed": ("#{first}より前の{n}件は封印の導入前の記録で、ハッシュの連鎖のみで"
                       "守られています。",
                       "{n} events before #{first} predate sealing and are protected by the "
                       "hash chain only."),
    "chain_broken": ("改ざんを検出しました", "Tampering detected"),
    "chain_further": ("このほかに{n}件の問題があります（最初の問題のみ表示しています）。",
                      "{n} further problems were found (only the first is shown)."),
    "chain_technical": ("技術的な詳細（英語）", "Technical detail"),
    "chain_cli": ("サーバーで intake audit verify を実行しても同じ検査ができます。",
                  "The same check runs on the server with intake audit verify."),
    "at_unknown": ("日時不明", "time unknown"),
    # the first broken entry, by kind
    "brk_content_changed": ("記録 #{id}（{at}）の内容が、記録された後に書き換えられています。",
                            "Event #{id} ({at}) was edited after it was recorded."),
    "brk_link_broken": ("記録 #{id}（{at}）の直前の記録が削除または変更されています。",
                        "The event before #{id} ({at}) was deleted or changed."),
    "brk_unsealed": ("記録 #{id}（{at}）には封印がありません。鍵を持たない者が追加したか、"
                     "封印を消しました。",
                     "Event #{id} ({at}) has no seal: added, or its seal removed, by "
                     "someone without the key."),
    "brk_seal_mismatch": ("記録 #{id}（{at}）の封印が一致しません。鍵を持たない者が追加または"
                          "書き換え（ハッシュの再計算）をしました。",
                          "The seal of event #{id} ({at}) does not match: inserted or "
                          "rewritten by someone without the key."),
    "brk_other_key": ("記録 #{id}（{at}）は別の鍵で封印されています（偽造）。",
                      "Event #{id} ({at}) is sealed with another key (forged)."),
    "brk_inserted": ("記録 #{id}（{at}）は、最新として記録された記録の後に不正に追加されました。",
                     "Event #{id} ({at}) was added after the event recorded as the newest."),
    "brk_tail_deleted": ("最新の記録 #{id}（{at}）以降が削除されています。",
                         "The newest events, up to #{id} ({at}), were deleted."),
    "brk_head_changed": ("最新の記録 #{id}（{at}）のハッシュが一致しません（連鎖の再計算）。",
                         "The hash of the newest event #{id} ({at}) does not match: the "
                         "chain was recomputed."),
    "brk_anchor_missing": ("最新の記録を保持する行（アンカー）が削除されています（#{id}以降）。",
                           "The anchor row (the record of the newest event) was deleted "
                           "(after #{id})."),
    "brk_anchor_altered": ("最新の記録を保持する行（アンカー）が書き換えられています（#{id}）。",
                           "The anchor row (the record of the newest event) was altered "
                           "(#{id})."),
    "brk_anchor_other_key": ("最新の記録 #{id} は別の鍵で封印されています。秘密鍵が変更された"
                             "か、設定が異なります。",
                             "The newest event #{id} is sealed with another key: the secret "
                             "key was changed, or the settings differ."),
    "brk_incident_deleted": ("記録 #{id}（{at}）以降が削除されていました（次の記録の書き込み時に"
                             "検出）。",
                             "Event #{id} ({at}) and any after it had been deleted (found "
                             "when the next event was recorded)."),
    "brk_incident_inserted": ("記録 #{id} 以降が、正規の手順を経ずに追加されていました（次の記録の"
                              "書き込み時に検出）。",
                              "Events from #{id} on had been added outside the app (found "
                              "when the next event was recorded)."),
    "brk_incident_changed": ("記録 #{id} のハッシュが書き換えられていました（次の記録の書き込み時"
                             "に検出）。",
                             "The hash of event #{id} had been changed (found when the next "
                             "event was recorded)."),
    "brk_incident_anchor_missing": ("最新の記録を保持する行（アンカー）が削除されていました（#{id}"
                                    "以降の記録が削除された可能性があります）。",
                                    "The anchor row had been deleted (events after #{id} may "
                                    "have been deleted)."),
    "brk_incident_anchor_altered": ("最新の記録を保持する行（アンカー）が書き換えられていました"
                                    "（#{id}）。",
                                    "The anchor row had been altered (#{id})."),
    # filters
    "f_from": ("開始日", "From"),
    "f_to": ("終了日", "To"),
    "f_actor": ("実行者", "Actor"),
    "f_action": ("操作", "Action"),
    "f_entity": ("対象ID", "Entity id"),
    "f_any": ("すべて", "Any"),
    "f_dates_note": ("日付は{tz}の時刻です。", "Dates are in {tz} time."),
    "apply": ("絞り込む", "Apply"),
    "clear": ("条件をクリア", "Clear"),
    "download_csv": ("CSVをダウンロード", "Download CSV"),
    "download_fhir": ("FHIR AuditEventをダウンロード", "Download FHIR AuditEvent"),
    "downloads_note": ("ダウンロードには現在の絞り込み条件が使われ、ダウンロードも記録されます。",
                       "Downloads use the current filters and are themselves recorded."),
    # the list
    "list_title": ("記録（新しい順）", "Events (newest first)"),
    "col_id": ("ID", "ID"),
    "col_at": ("日時（{tz}）", "Time ({tz})"),
    "col_actor": ("実行者", "Actor"),
    "col_action": ("操作", "Action"),
    "col_entity": ("対象", "Entity"),
    "col_source": ("接続元", "From"),
    "col_detail": ("詳細", "Detail"),
    "col_hash": ("ハッシュ", "Hash"),
    "shown": ("{total}件中 {a}〜{b}件目", "{a}–{b} of {total}"),
    "none_found": ("条件に合う記録はありません。", "No events match."),
    "prev_page": ("前のページ", "Previous page"),
    "next_page": ("次のページ", "Next page"),
    "pages_label": ("ページ送り", "Pages"),
    # users
    "users_note": ("このページは閲覧専用です。ユーザーの追加・無効化・有効化・パスワードの再設定は"
                   "サーバーで intake users create / disable / enable / reset-password コマンドで"
                   "行います。",
                   "This page is read-only. Users are added, disabled, enabled and given new "
                   "passwords on the server with intake users create / disable / enable / "
                   "reset-password."),
    "col_name": ("ユーザー名", "User name"),
    "col_role": ("役割", "Role"),
    "col_active": ("状態", "State"),
    "col_locked": ("ロック", "Lock-out"),
    "active": ("有効", "active"),
    "disabled": ("無効", "disabled"),
    "locked_until": ("{time}までロック中", "locked until {time}"),
    "not_locked": ("なし", "none"),
    "no_users": ("ユーザーはいません。", "There are no users."),
    # errors
    "bad_filter_body": ("「{label}」（{name}）：{why}", "“{label}” ({name}): {why}"),
    "why_date": ("日付は YYYY-MM-DD の形で入力してください。", "enter a date as YYYY-MM-DD."),
    "why_range": ("終了日は開始日以降にしてください。",
                  "the end date must not be before the start."),
    "why_text": ("1〜{n}文字で入力してください。", "enter 1 to {n} characters."),
    "why_action": ("操作名は英小文字・数字・「._:-」のみです。",
                   "an action name has only lower-case letters, digits and . _ : -"),
    "why_page": ("1以上の整数を指定してください。", "give a whole number from 1."),
    "why_too_many": ("一度のFHIR出力は{max}件までです（該当{n}件）。期間を狭めるか、CSVを"
                     "お使いください。",
                     "one FHIR export holds at most {max} events ({n} match): narrow the "
                     "dates, or use the CSV."),
    "back_to_audit": ("監査ログに戻る", "Back to the audit trail"),
    # devices (/admin/devices)
    "devices_note": ("受付ボード（緊急アラートの表示）と患者さん用タブレットは、ここで登録"
                     "した端末でのみ動きます。端末を追加すると登録コードが表示されるので、"
                     "その端末で入力してください。",
                     "Front-desk alert boards and patient tablets work only on devices "
                     "registered here. Adding a device shows a registration code: type it on "
                     "that device."),
    "devices_cli_note": ("サーバーでも intake devices add / code / revoke / list で同じ操作が"
                         "できます。",
                         "The same can be done on the server with intake devices add / "
                         "code / revoke / list."),
    "add_title": ("端末を追加", "Add a device"),
    "f_device_name": ("名前", "Name"),
    "f_device_name_hint": ("例：受付1、タブレット2（{n}文字まで）。アラートや監査ログに"
                           "表示されます。",
                           "For example “Front desk 1” or “Tablet 2” (up to {n} characters); "
                           "shown on alerts and in the audit trail."),
    "f_device_kind": ("種類", "Kind"),
    "kind_board": ("受付ボード", "board"),
    "kind_tablet": ("タブレット", "tablet"),
    "kind_board_desc": ("受付ボード（受付で常に表示しておくアラート画面）",
                        "Board (the front desk's always-on alert screen)"),
    "kind_tablet_desc": ("タブレット（患者さんが問診に答える端末）",
                         "Tablet (where patients answer the questionnaire)"),
    "add_submit": ("追加して登録コードを表示", "Add and show its code"),
    "device_list_title": ("登録済みの端末", "Registered devices"),
    "times_note": ("時刻は{tz}の時刻です。", "Times are in {tz} time."),
    "col_device_name": ("名前", "Name"),
    "col_kind": ("種類", "Kind"),
    "col_device_state": ("状態", "State"),
    "col_created": ("作成", "Created"),
    "col_enrolled": ("登録日時", "Enrolled"),
    "col_seen": ("最終接続", "Last seen"),
    "col_revoked": ("無効化", "Revoked"),
    "col_device_actions": ("操作", "Actions"),
    "by_who": ("実行：{who}", "by {who}"),
    "not_yet": ("まだ", "not yet"),
    "never_seen": ("なし", "never"),
    "connected_now": ("接続中", "connected now"),
    "not_revoked": ("いいえ", "no"),
    "state_active": ("使用中", "active"),
    "state_pending": ("登録待ち（コード発行済み）", "pending code"),
    "state_pending_until": ("コードは{time}まで有効", "code valid until {time}"),
    "state_revoked": ("無効化済み", "revoked"),
    "state_not_enrolled": ("未登録", "not enrolled"),
    "btn_new_code": ("新しいコード", "New code"),
    "btn_new_code_label": ("「{name}」の新しい登録コードを発行", "Issue a new code for “{name}”"),
    "btn_revoke": ("無効化…", "Revoke…"),
    "btn_revoke_label": ("「{name}」を無効化…", "Revoke “{name}”…"),
    "no_devices": ("登録された端末はありません。", "There are no devices yet."),
    "revoked_notice": ("「{name}」を無効化しました。この端末にはもう何も表示されません。",
                       "“{name}” was revoked: it gets nothing more."),
    # the one-time code
    "code_title_new": ("「{name}」（{kind}）を追加しました", "“{name}” ({kind}) was added"),
    "code_title_again": ("「{name}」（{kind}）の新しい登録コード",
                         "A new registration code for “{name}” ({kind})"),
    "code_label": ("登録コード", "Registration code"),
    "code_expires": ("有効期限：{time}（{tz}）まで（{m}分間）",
                     "Valid until {time} ({tz}), for {m} minutes"),
    "code_how": ("その端末のブラウザで次のアドレス（{path}）を開き、表示される登録画面にこの"
                 "コードを入力してください。",
                 "On that device, open this address ({path}) in the browser and type this "
                 "code on the registration page it shows."),
    "code_once": ("このコードはこの画面に一度だけ表示され、あとから表示し直すことはできません。"
                  "この画面を閉じた後や期限が切れた後は、一覧から新しいコードを発行してください。",
                  "This code is shown only now and cannot be shown again. After leaving "
                  "this page, or once it expires, issue a new code from the list."),
    "code_replaces": ("以前に発行したコードは使えなくなりました。いま「{name}」として登録されている"
                      "端末は、このコードが使われるまで使えます。コードを入力した端末が新しい"
                      "「{name}」になり、それまでの端末は使えなくなります。",
                      "Any earlier code no longer works. The device registered as “{name}” "
                      "now keeps working until this code is used: the device that types it "
                      "becomes “{name}”, and the earlier one stops."),
    "back_to_devices": ("端末の一覧に戻る", "Back to the devices"),
    # revoking
    "revoke_title": ("「{name}」を無効化しますか？", "Revoke “{name}”?"),
    "revoke_board": ("この受付ボードには直ちにアラートが表示されなくなり、開いている画面も閉じられ"
                     "ます。受付に別のボードやデスク画面があることを確かめてください。",
                     "This board stops showing alerts at once, and its open screen is "
                     "closed. Make sure the front desk has another board or the desk page."),
    "revoke_tablet": ("このタブレットでは直ちに問診ができなくなります。",
                      "This tablet can no longer be used for the questionnaire, at once."),
    "revoke_again": ("再び使うには、新しい登録コードを発行してその端末で入力します。",
                     "To use it again, issue a new code and type it on the device."),
    "revoke_submit": ("無効化する", "Revoke"),
    "cancel": ("やめる", "Cancel"),
    # refusals
    "add_failed_title": ("端末を追加できませんでした", "The device was not added"),
    "code_failed_title": ("登録コードを発行できませんでした", "No code was issued"),
    "revoke_failed_title": ("端末を無効化できませんでした", "The device was not revoked"),
    "err_name_length": ("「名前」：1〜{n}文字で入力してください。",
                        "“Name”: enter 1 to {n} characters."),
    "err_name_control": ("「名前」：制御文字は使えません。",
                         "“Name”: control characters are not allowed."),
    "err_kind": ("「種類」：受付ボードかタブレットを選んでください。",
                 "“Kind”: choose board or tablet."),
    "err_duplicate": ("「{name}」という名前の端末はすでにあります。別の名前にするか、一覧からその"
                      "端末の新しいコードを発行してください。",
                      "A device named “{name}” already exists: choose another name, or issue "
                      "a new code for it from the list."),
    "err_no_device": ("番号{id}の端末はありません。一覧を開き直してください。",
                      "There is no device number {id}. Open the list again."),
    "err_already_revoked": ("「{name}」はすでに無効化されています。",
                            "“{name}” is already revoked."),
    "err_refused": ("入力内容を確認してください。", "Check what was entered."),
}

ADMIN = Catalog("admin", CATALOG, STAFF)
