"""Front-desk alerts: raised with a triage result, answered (対応中 / 確認済) from any
board, the desk or the worklist, escalated when nobody answers an emergency.

``services`` is the domain (no Flask); ``views`` the board page at ``/board`` and the
answer endpoint at ``/alerts/<id>``. The live streams that carry alerts to the screens
are served by the live process (:mod:`intake.live`).
"""
