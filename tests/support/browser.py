"""Driving the tablet in Chromium the way a patient does: by tapping what is on screen;
and signing in to the staff pages the way staff do.

Also: axe-core (from tests/browser/node_modules, installed from the lockfile by
``npm ci``), screenshots into ``test-artifacts/screenshots/``, and the list of
request URLs a page made, to prove no answer ever travels in one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.kiosk.form import Question, tablet_form
from support import REPO, npm_ci
from support.processes import LiveProcess

HERE = REPO / "tests" / "browser"  # its Node packages (axe-core)
SHOTS = REPO / "test-artifacts" / "screenshots"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
PIN = "246810"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PORTRAIT = {"width": 768, "height": 1024}
LANDSCAPE = {"width": 1280, "height": 800}

# Every URL the tablet may request: screen numbers and a language, never an answer.
ALLOWED_URL = re.compile(
    r"^/kiosk(/|/welcome|/q/\d+(\?(review|check)=1)?|/review|/done|/status|/quit|/reset|"
    r"/clear|/lang|/touch|/static/(kiosk\.css|kiosk\.js|knees\.svg))?(\?lang=(ja|en))?$")
# The app behind each server's base URL, so a page can be enrolled as a device there.
APPS: dict[str, Any] = {}

MESSAGES = {
    "ja": {"emergency": "今すぐ受付スタッフにお声がけください",
           "same_day": "まもなくスタッフがお声がけします",
           "thanks": "ご回答ありがとうございました。"},
    "en": {"emergency": "Please tell the reception staff now",
           "same_day": "A staff member will speak with you shortly",
           "thanks": "Thank you for your answers."},
}


def ensure_axe() -> str:
    """axe-core's source, installed by ``npm ci`` from the committed lockfile if needed."""
    npm_ci(HERE)
    return AXE.read_text(encoding="utf-8")


# Every visible control a finger uses must be at least 48 x 48 CSS pixels.
TARGETS_JS = """() => {
  const sel = 'label.opt, label.region, label.face, button, a.button, ' +
              'input[type=number], input[type=text], input[type=password], input[type=date]';
  return Array.from(document.querySelectorAll(sel))
    .filter(el => el.offsetParent !== null && !el.closest('[hidden]'))
    .map(el => [el, el.getBoundingClientRect()])
    .filter(([el, r]) => r.width < 48 || r.height < 48)
    .map(([el, r]) => el.outerHTML.slice(0, 80) +
         ` ${Math.round(r.width)}x${Math.round(r.height)}`);
}"""


@dataclass
class Audit:
    """axe-core results of every screen a test visited; serious and critical ones fail."""

    source: str
    problems: list[str] = field(default_factory=list)
    screens: list[str] = field(default_factory=list)
    checked: bool = False

    def check(self, page: Any, screen: str) -> None:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(self.source)  # CDP evaluation: not subject to the page's CSP
        violations = page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
            }""")
        self.screens.append(screen)
        small = page.evaluate(TARGETS_JS)
        for target in small:
            self.problems.append(f"{screen}: tap target under 48 px: {target}")
        for v in violations:
            if v["impact"] in ("serious", "critical"):
                self.problems.append(f"{screen}: {v['id']} ({v['impact']}) {v['help']} "
                                     f"at {v['nodes']}")

    def assert_clean(self) -> None:
        self.checked = True
        assert not self.problems, "\n".join(self.problems)


def shoot(page: Any, name: str, both: bool = True) -> None:
    """Screenshots at 768x1024 (portrait) and 1280x800 (landscape), viewport as seen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")  # what the patient sees first
    original = page.viewport_size
    sizes = [PORTRAIT, LANDSCAPE] if both else [original]
    for size in sizes:
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{size['width']}x{size['height']}.png"))
    page.set_viewport_size(original)


def sign_in_staff(page: Any, base: str, name: str, password: str, *, path: str = "/desk",
                  lang: str = "ja") -> None:
    """Open a staff page, land on the sign-in form, and sign in as a user would."""
    page.goto(f"{base}{path}?lang={lang}")
    page.wait_for_url("**/auth/signin?**")
    page.fill("#f-name", name)
    page.fill("#f-password", password)
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^(サインイン|Sign in)$")).click()


def enroll_context(context: Any, base: str, kind: str, name: str | None = None) -> str:
    """Make a browser context an enrolled device (``tablet`` or ``board``) of the server
    at ``base`` (its cookie; the enrollment page itself is tested on its own). Cookies
    are per host, not per port: servers on one database share it."""
    from support import enroll_device

    token = enroll_device(APPS[base], kind, name)
    context.add_cookies([{"name": "intake_device", "value": token, "url": base,
                          "httpOnly": True, "sameSite": "Strict"}])
    return token


def start_patient(page: Any, base: str, *, lang: str, record_number: str,
                  pin: str = PIN) -> None:
    """Staff: PIN, record number, language, hand over (on an enrolled tablet)."""
    page.goto(f"{base}/kiosk")
    if "/devices/enroll" in page.url:
        enroll_context(page.context, base, "tablet")
        page.goto(f"{base}/kiosk")
    page.fill("#f-pin", pin)
    page.locator("label:has(input[name=patient][value=record])").click()
    page.fill("#f-record_number", record_number)
    page.locator(f"label:has(input[name=lang][value={lang}])").click()
    page.get_by_role("button", name=re.compile("タブレットを渡す|hand the tablet over")).click()
    page.wait_for_url("**/kiosk/welcome")


def current_step(page: Any) -> int:
    found = re.search(r"/kiosk/q/(\d+)", page.url)
    assert found, page.url
    return int(found.group(1))


def tap_answer(page: Any, q: Question, value: Any, side: str | None) -> None:
    """Answer one question by tapping (or typing a number) like a patient."""
    item = page.locator(f"#item-{q.link_id}")
    if q.control == "number":
        item.locator("input[type=number]").fill(str(value))
        return
    if q.control == "multi":
        for code in value:
            label = item.locator(f"label:has(input[value='{code}'])")
            if not label.locator("input").is_checked():
                label.click()
        return
    code = ("true" if value else "false") if q.control == "yesno" else str(value)
    labels = item.locator(f"label:has(input[value='{code}'])")
    if q.control == "knee_location" and labels.count() == 2:
        labels.nth(1 if side == "R" else 0).click()  # tap the knee that hurts
    else:
        labels.click()


def answer_screen(page: Any, answers: dict[str, Any]) -> None:
    section = tablet_form().sections[current_step(page)]
    for q in section.questions:
        if q.link_id in answers and page.locator(f"#item-{q.link_id}").is_visible():
            tap_answer(page, q, answers[q.link_id], answers.get("pain_side"))


def press(page: Any, name_ja: str, name_en: str) -> None:
    page.get_by_role("button", name=re.compile(f"^({name_ja}|{name_en})$")).click()


def answer_all(page: Any, answers: dict[str, Any], *, on_screen: Any = None) -> None:
    """From the welcome screen to the review screen, answering every screen shown."""
    on_screen and on_screen("welcome")
    page.get_by_role("link", name=re.compile("^(はじめる|Start)$")).click()
    while "/kiosk/review" not in page.url:
        step = current_step(page)
        answer_screen(page, answers)
        on_screen and on_screen(f"q{step}-{tablet_form().sections[step].link_id}")
        with page.expect_navigation():
            press(page, "次へ", "Next")
        assert page.locator(".summary").count() == 0, f"screen {step} refused the answers"
    on_screen and on_screen("review")


def send(page: Any) -> None:
    with page.expect_navigation():
        press(page, "送信", "Send")


def walk(page: Any, answers: dict[str, Any], *, on_screen: Any = None) -> str:
    """From the welcome screen to the closing message; returns the message shown."""
    answer_all(page, answers, on_screen=on_screen)
    send(page)
    page.wait_for_selector("#done", timeout=15_000)
    on_screen and on_screen("done")
    return str(page.locator("#done h1").inner_text()).strip()


@dataclass
class Server:
    app: Any
    base: str
    stop: Any
    live: Any = None  # the live process in front of it, if any


def serve_app(app: Any) -> Server:
    """Serve a WSGI app over HTTP on a free port, in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=10)

    return Server(app, f"http://127.0.0.1:{server.server_port}", stop)


def serve_behind_live(settings: dict[str, Any], tmp: Path, **live_settings: str) -> Server:
    """The app on these settings as ``intake serve`` runs it: served over HTTP behind a
    live process (its front door, which also serves the boards' and staff pages'
    streams). The Server's base is the live process's; ``stop`` stops both."""
    from intake import create_app

    web = serve_app(create_app({**settings, "proxy_hops": "1"}))
    live = LiveProcess({**settings, **live_settings}, tmp, upstream=web.base)
    try:
        live.start()
    except BaseException:
        web.stop()
        raise

    def stop() -> None:
        live.stop()
        web.stop()

    APPS[live.base] = web.app
    return Server(web.app, live.base, stop, live)
