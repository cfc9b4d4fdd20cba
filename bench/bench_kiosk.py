"""Tablet and desk benchmark (run on demand; not part of the tests).

    python bench/bench_kiosk.py [--n 200] [--database-url URL]

Prints, for every screen of the tablet flow and the desk page:

1. server time per request, p50 and p99 over N requests, measured around Flask's test
   client (the whole WSGI app: routing, CSRF, the database, templates; no network), on
   SQLite in a temporary folder unless ``--database-url`` names another database;
2. page weight: the HTML of the screen plus the CSS, JS and images it links, in bytes
   as sent and gzip-compressed (what a reverse proxy with compression would send). The
   static files are revalidated (ETag) rather than re-sent on later screens.
"""

from __future__ import annotations

import argparse
import gzip
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from werkzeug.datastructures import MultiDict  # noqa: E402

from intake import create_app, state  # noqa: E402
from intake.auth.users import create_user  # noqa: E402
from intake.kiosk.form import tablet_form  # noqa: E402
from intake.storage.migrate import upgrade  # noqa: E402
from intake.storage.models import utcnow  # noqa: E402
from support import TOKEN_RE, case  # noqa: E402
from support.kiosk import PIN, Tablet  # noqa: E402

ASSET = re.compile(r'(?:href|src)="(/(?:kiosk|desk|auth)/static/[^"]+)"')
DESK_PASSWORD = "bench desk password"  # noqa: S105 - a throwaway database


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(n: int, call: Callable[[], Any]) -> list[float]:
    call()  # warm: templates compiled, connections open
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = call()
        out.append((time.perf_counter() - start) * 1000)
        assert resp.status_code < 500, resp.status_code
    return out


def weight(client: Any, html: bytes) -> tuple[int, int, int, int]:
    """(html bytes, asset bytes, total, total gzipped) of one screen."""
    assets = 0
    gz = len(gzip.compress(html))
    for path in sorted(set(ASSET.findall(html.decode()))):
        body = client.get(path).data
        assets += len(body)
        gz += len(gzip.compress(body))
    return len(html), assets, len(html) + assets, gz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-kiosk-"))
    url = args.database_url or f"sqlite:///{tmp / 'intake.db'}"
    upgrade(url)
    app = create_app({"data_dir": str(tmp), "database_url": url, "kiosk_pin": PIN,
                      "log_level": "warning"})
    answers = case("pub-03")["answers"]
    form = tablet_form()

    tablet = Tablet(app)
    tablet.start(lang="ja")
    tablet.answer_all(answers)
    client = tablet.client
    rows: list[tuple[str, list[float], tuple[int, int, int, int] | None]] = []

    def page(name: str, path: str) -> None:
        rows.append((name, timed(args.n, lambda: client.get(path)),
                     weight(client, client.get(path).data)))

    fresh = app.test_client()
    rows.append(("start (staff)", timed(args.n, lambda: fresh.get("/kiosk")),
                 weight(fresh, fresh.get("/kiosk").data)))
    page("welcome", "/kiosk/welcome")
    for step in form.enabled_sections(answers):
        page(f"q/{step} {form.sections[step].link_id}", f"/kiosk/q/{step}")
    page("review", "/kiosk/review")

    step = form.enabled_sections(answers)[-1]
    tablet.get(f"/kiosk/q/{step}")
    fields = MultiDict([("action", "autosave"), ("csrf_token", tablet.token),
                        ("runner", "false"), ("shown", "runner")])
    rows.append(("POST autosave (one screen)",
                 timed(args.n, lambda: client.post(f"/kiosk/q/{step}", data=fields)), None))

    def start_and_send() -> Any:
        t = Tablet(app)
        t.start()
        t.answer_all(answers)
        t.get("/kiosk/review")
        return t

    senders = [start_and_send() for _ in range(min(args.n, 50))]
    send_times = []
    for t in senders:
        started = time.perf_counter()
        t.client.post("/kiosk/review", data={"csrf_token": t.token})
        send_times.append((time.perf_counter() - started) * 1000)
    rows.append((f"POST send (n={len(senders)})", send_times, None))
    done = senders[0].client
    rows.append(("done / waiting", timed(args.n, lambda: done.get("/kiosk/done")),
                 weight(done, done.get("/kiosk/done").data)))

    with state(app).sessions.begin() as session:
        create_user(session, "bench.desk", "front_desk", DESK_PASSWORD, actor="bench",
                    now=utcnow())
    desk = app.test_client()
    signin = desk.get("/auth/signin").get_data(as_text=True)
    token = TOKEN_RE.search(signin).group(1)  # type: ignore[union-attr]
    resp = desk.post("/auth/signin", data={"name": "bench.desk", "password": DESK_PASSWORD,
                                           "csrf_token": token})
    assert resp.status_code == 303, resp.status_code
    rows.append(("desk (audited read)", timed(args.n, lambda: desk.get("/desk")),
                 weight(desk, desk.get("/desk").data)))
    rows.append(("desk rows fragment", timed(args.n, lambda: desk.get("/desk/rows")), None))

    print(f"database: {url.split(':', 1)[0]}, n={args.n} requests per page, "
          "Flask test client (server time only)")
    print(f"{'screen':34} {'p50 ms':>8} {'p99 ms':>8} {'html B':>8} {'css+js+svg B':>13} "
          f"{'total B':>8} {'gzip B':>8}")
    for name, times, w in rows:
        size = (f"{w[0]:>8} {w[1]:>13} {w[2]:>8} {w[3]:>8}" if w else "")
        print(f"{name:34} {statistics.median(times):8.2f} {percentile(times, 0.99):8.2f} "
              f"{size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
