"""Strings of the admin pages (/admin), Japanese first, English second."""

from __future__ import annotations

CATALOG: dict[str, tuple[str, str]] = {
    "admin_title": ("管理", "Admin"),
    "audit_title": ("監査ログ", "Audit trail"),
    "users_title": ("ユーザー", "Users"),
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
    "filters_title": ("絞り込み", "Filters"),
    "f_from": ("開始日", "From"),
    "f_to": ("終了日", "To"),
    "f_actor": ("実行者", "Actor"),
    "f_action": ("操作", "Action"),
    "f_entity": ("対象ID", "Entity id"),
    "f_page": ("ページ", "Page"),
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
    "bad_filter_title": ("絞り込み条件が正しくありません", "A filter is not valid"),
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
}
