"""Strings of the alert board and of the alert list the desk and the worklist share;
then the staff pages' (:data:`intake.auth.i18n.STAFF`)."""

from __future__ import annotations

from typing import Any

from intake.alerts.services import REASONS
from intake.auth.i18n import STAFF
from intake.kiosk.i18n import CATALOG as KIOSK_STRINGS
from intake.kiosk.i18n import KIOSK
from intake.web.i18n import Catalog

CATALOG: dict[str, tuple[str, str]] = {
    "board_title": ("受付ボード", "Front-desk board"),
    "board_name": ("ボード: {name}", "Board: {name}"),
    "sound_start": ("音を出して開始する", "Start with sound"),
    "sound_start_note": ("ブラウザーの決まりで、最初に一度タップするまで音が出ません。"
                         "タップしてから、この画面を開いたままにしてください。",
                         "Browsers play no sound until the page is tapped once. Tap, then "
                         "leave this screen open."),
    "sound_off": ("音が出ません。ここをタップしてください", "No sound: tap here"),
    "sound_on": ("通知音: オン", "Sound: on"),
    "sound_off_alarm": ("緊急アラートがあります: タップして音を出してください",
                        "Emergency waiting: tap to turn the sound on"),
    "live_ok": ("受信中", "Receiving"),
    "live_checked": ("最終確認 {time}", "Last checked {time}"),
    "live_lost": ("接続が切れています: 緊急アラートを受信できません。再接続しています…",
                  "Connection lost: emergency alerts are NOT being received. "
                  "Reconnecting…"),
    "lost_since": ("最終受信 {time}。タブレットと受付を直接確認してください。",
                   "Last received {time}. Check the tablets and the desk in person."),
    "confirm_done": ("確認済にすると、すべての画面でこのアラートが止まります。よろしいですか?",
                     "Marking it done stops this alert on every screen. Go ahead?"),
    "revoked": ("この端末の登録は取り消されました。アラートは表示されません。管理者に連絡して"
                "ください。",
                "This device's registration was revoked: no alerts are shown. Contact an "
                "administrator."),
    "boards_off": ("受付ボードが1台もつながっていません。緊急アラートはサインイン中の画面にしか"
                   "届きません。受付のボードを確認してください。",
                   "No front-desk board is connected: emergency alerts reach only signed-in "
                   "screens. Check the board at reception."),
    "replaced": ("同じ端末・同じサインインで新しく開いた画面に切り替わりました。この画面では"
                 "アラートを受信しません。使うには再読み込みしてください。",
                 "A newer page of the same device or sign-in took over: this one no longer "
                 "receives alerts. Reload it to use it here."),
    "no_alerts": ("現在、対応が必要な患者さんはいません。", "No patient needs the desk now."),
    "more_alerts": ("ほかに {n} 件あります(ワークリストで確認できます)。",
                    "{n} more (see the worklist)."),
    "section_emergency": ("緊急", "Emergency"),
    "section_same_day": ("お声がけ", "Speak with the patient"),
    "level_emergency": ("緊急: すぐに患者さんのもとへ", "Emergency: go to the patient now"),
    "level_same_day": ("当日中: 患者さんにお声がけを", "Same day: speak with the patient"),
    "escalated": ("{m}分以上対応なし", "Unanswered for over {m} min"),
    "state_open": ("未対応", "Unanswered"),
    "state_in_progress": ("対応中", "In progress"),
    "state_done": ("確認済", "Done"),
    "answer_in_progress": ("対応中にする", "I'm on it"),
    "answer_done": ("確認済にする", "Mark done"),
    "answered_by": ("{state}: {by}({via}、{time})", "{state}: {by} ({via}, {time})"),
    "via_board": ("{name}", "{name}"),
    "via_desk": ("受付画面", "desk"),
    "via_review": ("ワークリスト", "worklist"),
    "via_system": ("自動", "automatic"),
    "via_superseded": ("緊急に切り替え", "became an emergency"),
    "via_expired": ("時間切れで自動終了", "closed after 18 hours"),
    "patient_record": ("診察券番号 {number}", "Record no. {number}"),
    "patient_walk_in": ("{name}({kana})さん", "{name} ({kana})"),
    "patient_none": ("患者情報なし", "No patient details"),
    "tablet": ("タブレット: {name}", "Tablet: {name}"),
    "received_at": ("{time} 受付", "Received {time}"),
    "open_case": ("開く", "Open"),
    "who_title": ("どなたが対応しますか?", "Who is answering?"),
    "who_note": ("お名前を選んでください。記録に残ります。",
                 "Choose your name. It is recorded."),
    "who_cancel": ("やめる", "Cancel"),
    "answer_failed": ("記録できませんでした。もう一度お試しください。",
                      "Could not record it. Please try again."),
    "answer_conflict": ("ほかの画面で先に確認済になっています。",
                        "Another screen has already marked it done."),
    "not_diagnosis": ("表示は受付での対応の目安です。診断ではありません。",
                      "This guides the desk's response. It is not a diagnosis."),
}


ALERTS = Catalog("alerts", CATALOG, STAFF)


def labels(lang: str) -> dict[str, Any]:
    """Everything the alert list's script needs to word an alert, in ``lang``: this
    catalog's own strings (the script's ``T``) and the intake sources' names."""
    texts = {key: ALERTS.text(key, lang) for key in CATALOG}
    sources = {key[len("source_"):]: KIOSK.text(key, lang) for key in KIOSK_STRINGS
               if key.startswith("source_")}
    return {"t": texts, "reasons": {code: (text.en if lang == "en" else text.ja)
                                    for code, text in REASONS.items()},
            "sources": sources, "lang": lang}
