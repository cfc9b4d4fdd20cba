"""Every interface string of the tablet and the desk page, in Japanese and English, and
the strings every screen shares (the language switch, yes and no). Looked up through
:class:`intake.web.i18n.Catalog`. The questions themselves are not here: they come from
the Questionnaire's own translations (see ``intake.kiosk.form``).
"""

from __future__ import annotations

from intake.web.i18n import Catalog

# key -> (Japanese, English). Placeholders use str.format names.
CATALOG: dict[str, tuple[str, str]] = {
    # --- common ---------------------------------------------------------------------
    "app_title": ("問診", "Intake"),
    "other_lang_name": ("English", "日本語"),
    "other_lang_code": ("en", "ja"),
    "switch_lang_label": ("Switch to English", "日本語に切り替え"),
    "yes": ("はい", "Yes"),
    "no": ("いいえ", "No"),
    "next": ("次へ", "Next"),
    "back": ("戻る", "Back"),
    "save_review": ("保存して確認画面へ", "Save and go to the check screen"),
    "to_review": ("確認画面へ", "Go to the check screen"),
    "progress": ("{n} / {total}", "{n} of {total}"),
    "progress_label": ("進み具合", "Progress"),
    "quit": ("やめる", "Stop"),
    "quit_title": ("入力をやめますか?", "Stop answering?"),
    "quit_body": ("やめる場合は、タブレットを受付にお返しください。",
                  "If you stop, please hand the tablet back to the reception desk."),
    "quit_yes": ("やめる", "Yes, stop"),
    "quit_no": ("続ける", "No, continue"),
    # --- questions --------------------------------------------------------------------
    "required_msg": ("この質問にお答えください", "Please answer this question"),
    "required_summary": ("まだ答えていない質問があります",
                         "Some questions still need an answer"),
    "required_mark": ("必須", "required"),
    "invalid_number": ("{min}〜{max}の数字を入れてください",
                       "Please enter a number from {min} to {max}"),
    "invalid_choice": ("選択肢から選んでください", "Please choose one of the answers"),
    "exclusive_none": ("「{none}」は他と一緒に選べません",
                       "“{none}” cannot be chosen together with other answers"),
    "choose_all": ("あてはまるものをすべて選んでください", "Choose all that apply"),
    "age_unit": ("歳", "years"),
    "scale_low": ("痛みなし", "No pain"),
    "scale_high": ("これ以上ない痛み", "Worst pain imaginable"),
    "knee_view": ("うしろから見た図", "Seen from behind"),
    "knee_left": ("左ひざ", "Left knee"),
    "knee_right": ("右ひざ", "Right knee"),
    "knee_region": ("{knee}・{region}", "{knee}, {region}"),
    "knee_inner_hint": ("内側 = もう片方のひざに近い側",
                        "Inner side = the side nearer the other knee"),
    # --- welcome / review / done ----------------------------------------------------------
    "welcome_title": ("ひざの裏の痛みについての問診", "Questions about pain behind the knee"),
    "welcome_body": ("画面の答えを指で押して選んでください。わからないときは、"
                     "受付スタッフにお声がけください。",
                     "Tap your answers on the screen. If anything is unclear, please ask "
                     "the reception staff."),
    "welcome_start": ("はじめる", "Start"),
    "check_answers_title": ("回答の確認", "Check your answers"),
    "review_intro": ("内容がよければ「送信」を押してください。直したいところは"
                     "「変更」を押してください。",
                     "If everything is right, tap “Send”. To correct a part, tap "
                     "“Change”."),
    "change": ("変更", "Change"),
    "change_section": ("「{section}」を変更", "Change “{section}”"),
    "not_answered": ("未回答", "Not answered"),
    "send": ("送信", "Send"),
    "waiting_title": ("送信しました", "Sent"),
    "waiting_body": ("少々お待ちください。", "Please wait a moment."),
    "msg_emergency": ("今すぐ受付スタッフにお声がけください",
                      "Please tell the reception staff now"),
    "msg_same_day": ("まもなくスタッフがお声がけします",
                     "A staff member will speak with you shortly"),
    "msg_thanks": ("ご回答ありがとうございました。", "Thank you for your answers."),
    "return_tablet": ("タブレットを受付にお返しください。",
                      "Please hand the tablet back to the reception desk."),
    "finish": ("終了", "Finish"),
    "emergency_wait": ("受付の画面にもお知らせしています。", "The reception desk's screen has "
                       "been alerted too."),
    "emergency_stay": ("動くのがつらい方は、その場でお待ちください。スタッフが参ります。",
                       "If moving is hard, please stay where you are: a member of staff "
                       "will come to you."),
    "clear_title": ("スタッフ用", "For staff"),
    "clear_submit": ("終了して最初の画面へ", "Finish and go to the start screen"),
    # --- idle ---------------------------------------------------------------------------
    "idle_title": ("まだ続けますか?", "Are you still there?"),
    "idle_body": ("操作がないため、まもなく最初の画面に戻ります。続けるときは画面に"
                  "触れてください。",
                  "The tablet will soon go back to the start. Touch the screen to "
                  "continue."),
    "idle_seconds": ("残り {s} 秒", "{s} seconds left"),
    "idle_continue": ("続ける", "Continue"),
    # --- staff start screen -------------------------------------------------------------------
    "start_title": ("問診の開始(スタッフ用)", "Start an intake (staff)"),
    "start_intro": ("患者さんの情報を入れ、言語を選んでから、タブレットをお渡しください。",
                    "Enter the patient, choose the language, then hand the tablet over."),
    "pin_label": ("スタッフPIN", "Staff PIN"),
    "patient_kind": ("患者さん", "Patient"),
    "kind_record": ("診察券番号あり", "Has a record number"),
    "kind_walk_in": ("初診・番号なし", "Walk-in (no record number)"),
    "record_number": ("診察券番号", "Record number"),
    "walk_in_legend": ("初診の方", "Walk-in patient"),
    "family_name": ("姓(漢字)", "Family name (kanji)"),
    "given_name": ("名(漢字)", "Given name (kanji)"),
    "family_name_kana": ("姓(かな)", "Family name (kana)"),
    "given_name_kana": ("名(かな)", "Given name (kana)"),
    "birth_date": ("生年月日", "Date of birth"),
    "sex_label": ("性別", "Sex"),
    "sex_male": ("男性", "Male"),
    "sex_female": ("女性", "Female"),
    "sex_other": ("その他", "Other"),
    "sex_unknown": ("不明", "Unknown"),
    "patient_lang": ("問診の言語", "Questionnaire language"),
    "lang_ja": ("日本語", "日本語 (Japanese)"),
    "lang_en": ("English(英語)", "English"),
    "hand_over": ("開始してタブレットを渡す", "Start and hand the tablet over"),
    "err_form": ("入力内容を確認してください", "Please check the form"),
    "err_pin": ("PINが違います", "Wrong PIN"),
    "err_locked": ("PINの誤りが続いたため、しばらく使えません({m}分後に再試行)",
                   "Too many wrong PINs: try again in {m} minutes"),
    "err_required_field": ("入力してください", "Required"),
    "err_record_number": ("英数字とハイフンで1〜32文字", "1 to 32 letters, digits or hyphens"),
    "err_kana": ("ひらがな・カタカナで入力してください", "Please use hiragana or katakana"),
    "err_birth_date": ("正しい生年月日を入れてください", "Enter a valid date of birth"),
    "err_choice": ("選んでください", "Please choose one"),
    "err_text": ("1〜50文字で入力してください", "1 to 50 characters"),
    # --- errors ---------------------------------------------------------------------------
    "expired_title": ("画面の有効期限が切れました", "This screen has expired"),
    "expired_body": ("最初の画面からやり直してください。",
                     "Please start again from the first screen."),
    "error_title": ("問題が発生しました", "Something went wrong"),
    "error_body": ("受付スタッフにお声がけください。", "Please tell the reception staff."),
    "too_many_title": ("しばらくお待ちください", "Please wait"),
    "to_start": ("最初の画面へ", "To the first screen"),
    # --- desk -----------------------------------------------------------------------------
    "desk_title": ("受付アラート", "Front-desk alerts"),
    "desk_note": ("トリアージは診断ではありません。スタッフと医師の判断を支援するためのものです。",
                  "Triage supports staff and clinicians; it is not a diagnosis."),
    "desk_recent": ("最近の問診(緊急度順)", "Recent intakes, most urgent first"),
    "desk_alerts": ("対応が必要な患者さん", "Patients the desk must see"),
    "desk_board_hint": ("この画面はサインインの時間切れで閉じます。受付に一日中表示しておく画面には"
                        "「受付ボード」(/board)をお使いください。",
                        "This page closes when the sign-in times out. For a screen that stays "
                        "on all day at the desk, use the front-desk board (/board)."),
    "col_time": ("受付時刻", "Received"),
    "desk_col_id": ("受付番号", "Intake number"),
    "col_urgency": ("緊急度", "Urgency"),
    "desk_col_department": ("推奨診療科", "Suggested department"),
    "col_status": ("状態", "Status"),
    "desk_col_source": ("経路", "Source"),
    "pending_triage": ("判定待ち", "Awaiting triage"),
    "no_intakes": ("まだありません", "None yet"),
    "status_received": ("受付済", "Received"),
    "status_triaged": ("判定済", "Triaged"),
    "status_triage_failed": ("判定エラー", "Triage failed"),
    "status_delivered": ("カルテ送信済", "Sent to records"),
    "status_delivery_failed": ("カルテ送信エラー", "Sending to records failed"),
    "status_acknowledged": ("確認済", "Acknowledged"),
    "source_kiosk": ("タブレット", "Tablet"),
    "source_kiosk-timeout": ("タブレット(途中で放置)", "Tablet (left unfinished)"),
    "source_kiosk-cancel": ("タブレット(途中でやめた)", "Tablet (stopped)"),
    "source_kiosk-replaced": ("タブレット(次の方で中断)", "Tablet (interrupted)"),
    "source_api": ("外部連携", "API"),
}

KIOSK = Catalog("kiosk", CATALOG)
t = KIOSK.text  # t(key, lang, **values): the tablet's and the desk's lookup
