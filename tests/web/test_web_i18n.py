"""The interface strings, all catalogs at once: every key lives in exactly one catalog
(a screen's lookup falls back from its area's catalog to the staff pages' and the
tablet's, so a key in two of them would be shadowed, or worded differently on two
screens), every string has Japanese and English with the same placeholders, and every
key the code, the templates and the alert list's script ask for is in the catalogs the
screen looks in: a literal key, and a key built from a code (``"err_" + code``), whose
codes are enumerated from where they are defined. A new place that builds a key from a
value fails here until this file says where its values come from.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import string
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, get_args

import pytest

from intake.errors import IntakeError
from intake.web.i18n import Catalog

E = TypeVar("E", bound=IntakeError)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
SCRIPTS = {ROOT / "intake" / "alerts" / "static" / "live.js": "alerts"}
# The catalog a template's t() looks in, by the template's folder (or name).
TEMPLATE_CATALOG = {"base.html": "kiosk", "kiosk": "kiosk", "auth": "auth", "staff": "auth",
                    "desk": "auth", "review": "review", "admin": "admin",
                    "devices": "devices", "alerts": "alerts"}
# The catalog a view's t() looks in, by the view's package.
CODE_CATALOG = {"kiosk": "kiosk", "auth": "auth", "web": "auth", "desk": "auth",
                "review": "review", "admin": "admin", "devices": "devices",
                "alerts": "alerts"}
ALERT_LIST = "alerts"  # the template's at() and the script's T: the alert list's catalog
GUARDED = "guarded"  # a built key the code shows the code itself for, when it has no words


def _modules() -> dict[str, ModuleType]:
    """Every area's i18n module, found on disk (a new one is checked the day it appears)."""
    found = {}
    for path in sorted((ROOT / "intake").glob("*/i18n.py")):
        if path.parent.name != "web":  # the lookup itself
            found[path.parent.name] = importlib.import_module(f"intake.{path.parent.name}.i18n")
    return found


def _catalogs() -> dict[str, Catalog]:
    """Area -> the Catalog of its strings (exactly one per i18n module)."""
    out = {}
    for area, module in _modules().items():
        own = [v for v in vars(module).values()
               if isinstance(v, Catalog) and v.strings is module.CATALOG]
        assert len(own) == 1, f"intake/{area}/i18n.py: one Catalog of its CATALOG"
        out[area] = own[0]
    return out


CATALOGS = _catalogs()
# The module-level names of the catalogs (KIOSK, STAFF, ...), for KIOSK.text(...) calls.
CATALOG_NAMES = {name: value for module in _modules().values()
                 for name, value in vars(module).items() if isinstance(value, Catalog)}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_catalogs_are_the_areas_and_fall_back_on_shared_ones() -> None:
    assert set(CATALOGS) >= {"kiosk", "auth", "review", "admin", "alerts", "devices"}
    for area, catalog in CATALOGS.items():
        chain = [c.name for c in catalog.chain()]
        assert chain[-1] == "kiosk", (area, chain)  # the strings every screen shares
        assert len(chain) == len(set(chain)), (area, chain)


def test_no_key_is_in_two_catalogs() -> None:
    seen: dict[str, str] = {}
    twice = []
    for area, catalog in CATALOGS.items():
        for key in catalog.strings:
            if key in seen:
                twice.append(f"{key}: {seen[key]} and {area}")
            seen[key] = area
    assert not twice, twice


def test_every_string_has_japanese_and_english_with_the_same_placeholders() -> None:
    problems = []
    for area, catalog in CATALOGS.items():
        for key, value in catalog.strings.items():
            if not (isinstance(value, tuple) and len(value) == 2
                    and all(isinstance(v, str) and v.strip() for v in value)):
                problems.append(f"{area}.{key}: not a (Japanese, English) pair")
            elif _fields(value[0]) != _fields(value[1]):
                problems.append(f"{area}.{key}: placeholders differ")
    assert not problems, problems


def test_the_lookup_picks_the_language_and_fills_placeholders() -> None:
    review = CATALOGS["review"]
    assert review.text("count", "en", total=3, first=1, last=3) == "1–3 of 3"
    assert review.translator("ja")("review_title") == "ワークリスト"
    assert review.text("signout", "en") == "Sign out"  # from the staff pages' catalog
    assert review.text("yes", "ja") == "はい"  # from the tablet's
    with pytest.raises(KeyError):
        review.text("no_such_key", "ja")


# --- the keys asked for ------------------------------------------------------------------


def _returned_strings(function: Callable[..., Any]) -> set[str]:
    """The string constants a function returns (directly or from a conditional)."""
    out = set()
    for node in ast.walk(ast.parse(inspect.getsource(function).lstrip())):
        if isinstance(node, ast.Return) and node.value is not None:
            for part in ast.walk(node.value):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    out.add(part.value)
    return out


def _string_args(package: str, call: str, position: int) -> set[str]:
    """Literal strings passed at ``position`` to ``call(...)`` anywhere in a package, and
    those assigned to a variable of the parameter's name passed there instead."""
    out: set[str] = set()
    for path in (ROOT / "intake" / package).glob("*.py"):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == call \
                    and len(node.args) > position:
                arg = node.args[position]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.add(arg.value)
                elif isinstance(arg, ast.Name):
                    names.add(arg.id)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) \
                    and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
                out.add(node.value.value)
    return out


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _subclasses(cls: type[E]) -> Iterator[type[E]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


# Keys the code builds from a value, by file and expression: where the values come from.
def _review_refusals() -> set[str]:
    from intake.review import actions

    # (Every refusal has its words, the 404 of an unknown intake included: a screen
    # that ever shows one must not fail on a missing key.)
    return {f"err_{c.code}" for c in _subclasses(actions.ReviewError)}


def _kiosk_messages() -> set[str]:
    from intake.kiosk.services import MessageKey

    return {f"msg_{m}" for m in get_args(MessageKey)}


def _start_errors() -> set[str]:
    from intake.kiosk.schemas import StartFormSchema
    from intake.kiosk.views import _start_error

    return {_start_error(f) for f in [*StartFormSchema().fields, "pin", "anything else"]}


def _intake_statuses(prefix: str) -> set[str]:
    from intake.storage.models import IntakeStatus

    return {f"{prefix}{s.value}" for s in IntakeStatus}


def _worklist_states() -> set[str]:
    from intake.review.worklist import STATE_FILTERS

    return {f"state_{s}" for s in STATE_FILTERS}


def _worklist_filters() -> set[str]:
    from intake.review.views import _FILTER_NAMES

    return {*_FILTER_NAMES.values(), "f_state"}


def _audit_filters() -> set[str]:
    from intake.admin.filters import PARAMS

    return {f"f_{p}" for p in PARAMS}


def _admin_whys() -> set[str]:
    from intake.admin.filters import _WHY

    return {*_WHY.values(), *_string_args("admin", "BadFilter", 1),
            *_string_args("admin", "DeviceRefused", 2)}


def _device_refusal_titles() -> set[str]:
    return {*_string_args("admin", "DeviceRefused", 1),
            *_string_args("admin", "device_by_id", 2)}


def _error_page_titles() -> set[str]:
    from intake.web import staff

    return {k for pair in staff._ERROR_TEXTS.values() for k in pair if k} | {staff.ERROR_TITLE}


CODE_BUILT: dict[tuple[str, str], Callable[[], Iterable[str]] | str] = {
    ("kiosk/views.py", "key"): "the templates' t(), checked with the templates",
    ("kiosk/views.py", "_start_error(k)"): _start_errors,
    ("kiosk/views.py", "f\"msg_{message or 'same_day'}\""): _kiosk_messages,
    ("desk/views.py", "f'status_{r.status}'"): lambda: _intake_statuses("status_"),
    ("desk/views.py", "f'source_{r.source}'"): GUARDED,
    ("review/views.py", "key"): GUARDED,  # Ui.coded: the code itself when it has no words
    ("review/views.py", "f'state_{s}'"): _worklist_states,
    ("review/views.py", "_FILTER_NAMES.get(name, 'f_state')"): _worklist_filters,
    ("review/views.py", "f'err_{exc.code}'"): _review_refusals,
    ("admin/views.py", "f'f_{exc.name}'"): _audit_filters,
    ("admin/views.py", "exc.why"): _admin_whys,
    ("admin/views.py", "exc.title"): _device_refusal_titles,
    ("web/staff.py", "title"): _error_page_titles,
    ("web/staff.py", "body"): _error_page_titles,
}


def _is_lookup(func: ast.expr) -> str | None:
    """The catalog a call looks in: '' for the file's own (t(...), self.t(...),
    i18n.t(...)), a catalog's name for KIOSK.text(...) or X.translator(lang)(...), or
    None when the call is no lookup."""
    if isinstance(func, ast.Name) and func.id in ("t", "at"):
        return ALERT_LIST if func.id == "at" else ""
    if isinstance(func, ast.Attribute) and func.attr == "t":
        return ""
    if isinstance(func, ast.Attribute) and func.attr == "text" \
            and isinstance(func.value, ast.Name) and func.value.id in CATALOG_NAMES:
        return func.value.id
    if isinstance(func, ast.Call) and isinstance(func.func, ast.Attribute) \
            and func.func.attr == "translator" and isinstance(func.func.value, ast.Name) \
            and func.func.value.id in CATALOG_NAMES:
        return func.func.value.id
    return None


def _code_uses() -> Iterator[tuple[str, Catalog, ast.expr]]:
    """(file, catalog, key expression) of every lookup in the views' code, and of every
    ``*_key=`` argument (a key handed to a template)."""
    for area, own in CODE_CATALOG.items():
        for path in sorted((ROOT / "intake" / area).glob("*.py")):
            if path.name == "i18n.py":
                continue
            where = f"{area}/{path.name}"
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                target = _is_lookup(node.func)
                if target is not None and node.args:
                    catalog = CATALOGS[own] if target == "" else \
                        CATALOGS.get(target) or CATALOG_NAMES[target]
                    yield where, catalog, node.args[0]
                if _name(node.func) == "_page":  # the tablet's page, with keys for it
                    for kw in node.keywords:
                        if kw.arg and kw.arg.endswith("_key"):
                            yield where, CATALOGS[own], kw.value


def _literal_keys(expr: ast.expr) -> list[str] | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.IfExp):
        body, orelse = _literal_keys(expr.body), _literal_keys(expr.orelse)
        if body is not None and orelse is not None:
            return body + orelse
    return None


def test_every_key_the_code_asks_for_is_known() -> None:
    missing, unexplained, seen = [], [], set()
    for where, catalog, expr in _code_uses():
        keys = _literal_keys(expr)
        if keys is None:
            site = (where, ast.unparse(expr))
            seen.add(site)
            source = CODE_BUILT.get(site)
            if source is None:
                unexplained.append(f"{where}: a key built from {site[1]}")
                continue
            if isinstance(source, str):
                continue
            keys = sorted(source())
            assert keys, site
        missing += [f"{where}: {key} ({catalog.name})" for key in keys if key not in catalog]
    assert not unexplained, unexplained
    assert not missing, missing
    assert seen == set(CODE_BUILT), sorted(set(CODE_BUILT) - seen)  # no stale entry here


# --- templates and the alert list's script ----------------------------------------------

_T_LITERAL = re.compile(r"""\b(t|at)\(\s*["']([A-Za-z0-9_.-]+)["']\s*[,)]""")
_T_BUILT = re.compile(r"""\b(t|at)\(\s*["']([a-z_]*)["']\s*[+~]\s*([\w.]+)"""
                      r"""(?:\s*[+~]\s*["']([a-z_]*)["'])?""")
_T_VARIABLE = re.compile(r"""\b(t|at)\(\s*([a-z_]+)\s*[,)]""")


def _enum(values: Iterable[Any], prefix: str, suffix: str = "") -> set[str]:
    return {f"{prefix}{getattr(v, 'value', v)}{suffix}" for v in values}


def _device_kinds(prefix: str, suffix: str = "") -> set[str]:
    from intake.storage.models import DeviceKind

    return _enum(DeviceKind, prefix, suffix)


def _device_states() -> set[str]:
    from intake.devices.services import state_of

    return _enum(_returned_strings(state_of), "state_")


def _chain_breaks() -> set[str]:
    from intake.audit import Break, BreakKind

    keys = {Break(kind, 1).key for kind in BreakKind if kind is not BreakKind.INCIDENT}
    for info in ({"kind": "anchor_missing"}, {"kind": "anchor_altered"},
                 {"found_last_id": 4, "anchor_last_id": 6},
                 {"found_last_id": 6, "anchor_last_id": 6},
                 {"found_last_id": 8, "anchor_last_id": 6}):
        keys.add(Break(BreakKind.INCIDENT, 1, info=info).key)
    return _enum(keys, "brk_")


def _roles() -> set[str]:
    from intake.storage.models import Role

    return _enum(Role, "role_")


def _sexes() -> set[str]:
    from intake.kiosk.schemas import SEXES

    return _enum(SEXES, "sex_")


def _done_notices() -> set[str]:
    from intake.review.views import _DONE

    return _enum(_DONE, "done_")


def _enrolled_kinds() -> set[str]:
    from intake.devices.views import HOME

    return _enum(HOME, "enroll_intro_")


def _template_literals(name: str, pattern: str) -> Callable[[], set[str]]:
    return lambda: set(re.findall(pattern, (TEMPLATES / name).read_text()))


# A key a template builds, by template, prefix, value and suffix; a template's t(name),
# by template and name.
TEMPLATE_BUILT: dict[tuple[str, ...], Callable[[], Iterable[str]] | str] = {
    ("admin/devices.html", "kind_", "k", "_desc"): lambda: _device_kinds("kind_", "_desc"),
    ("admin/devices.html", "kind_", "device_kind", ""): lambda: _device_kinds("kind_"),
    ("admin/devices.html", "kind_", "row.kind", ""): lambda: _device_kinds("kind_"),
    ("admin/devices.html", "kind_", "d.kind", ""): lambda: _device_kinds("kind_"),
    ("admin/devices.html", "revoke_", "row.kind", ""): lambda: _device_kinds("revoke_"),
    ("admin/devices.html", "state_", "row.state", ""): _device_states,
    ("admin/devices.html", "state_", "d.state", ""): _device_states,
    ("admin/audit.html", "brk_", "report.first.key", ""): _chain_breaks,
    ("admin/users.html", "role_", "u.role", ""): _roles,
    ("staff/_layout.html", "role_", "user.role.value", ""): _roles,
    ("kiosk/start.html", "sex_", "code", ""): _sexes,
    ("review/case.html", "done_", "done", ""): _done_notices,
    ("devices/enroll.html", "enroll_intro_", "kind", ""): _enrolled_kinds,
    ("kiosk/_controls.html", "knee"): _template_literals("kiosk/_controls.html",
                                                         r'"(knee_(?:left|right))"'),
    ("kiosk/start.html", "label_key"): _template_literals(
        "kiosk/start.html", r'\btext\(\s*"[a-z_]+",\s*"([a-z_]+)"'),
    ("kiosk/done.html", "message_key"): "handed over by the views, checked with the code",
    ("kiosk/error.html", "title_key"): "handed over by the views, checked with the code",
    ("kiosk/error.html", "body_key"): "handed over by the views, checked with the code",
}


def _template_catalog(path: Path) -> Catalog:
    rel = path.relative_to(TEMPLATES)
    return CATALOGS[TEMPLATE_CATALOG.get(rel.parts[0]) or TEMPLATE_CATALOG[rel.name]]


def test_every_key_the_templates_ask_for_is_known() -> None:
    missing, unexplained, seen = [], [], set()
    literal = 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        text = path.read_text()
        own = _template_catalog(path)

        def catalog(fn: str, own: Catalog = own) -> Catalog:
            return CATALOGS[ALERT_LIST] if fn == "at" else own

        for fn, key in _T_LITERAL.findall(text):
            literal += 1
            if key not in catalog(fn):
                missing.append(f"{name}: {key}")
        built = [(fn, (name, prefix, value, suffix))
                 for fn, prefix, value, suffix in _T_BUILT.findall(text)]
        built += [(fn, (name, value)) for fn, value in _T_VARIABLE.findall(text)]
        for fn, site in built:
            seen.add(site)
            source = TEMPLATE_BUILT.get(site)
            if source is None:
                unexplained.append(f"{name}: a key built from {site[1:]}")
            elif not isinstance(source, str):
                keys = sorted(source())
                assert keys, site
                missing += [f"{name}: {key}" for key in keys if key not in catalog(fn)]
    assert literal > 300  # the scan saw the templates
    assert not unexplained, unexplained
    assert not missing, missing
    assert seen == set(TEMPLATE_BUILT), sorted(set(TEMPLATE_BUILT) - seen)


_JS_LITERAL = re.compile(r"""\bT\.([a-z_]+)|\bT\[\s*"([a-z_]+)"\s*\]|\bfmt\(\s*"([a-z_]+)\"""")
_JS_BUILT = re.compile(r"""\bT\[\s*"([a-z_]+)"\s*\+""")


def _alert_states(exclude_open: bool = False) -> set[str]:
    from intake.storage.models import AlertState

    return {s.value for s in AlertState if not (exclude_open and s is AlertState.OPEN)}


def _alert_levels() -> set[str]:
    from intake.storage.models import AlertLevel

    return {level.value for level in AlertLevel}


def _answered_via() -> set[str]:
    """Where an answer was given: the answer's ``via`` (``board`` has its own string with
    the board's name) and the system's closing reasons."""
    from intake.alerts.views import VIA

    return {*VIA, *_keyword_strings("alerts", "via")} - {"board"}


def _keyword_strings(package: str, keyword: str) -> set[str]:
    out = set()
    for path in (ROOT / "intake" / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == keyword \
                    and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                out.add(node.value.value)
    return out


# A key the script builds: prefix -> the values (the script's T holds only the alert
# list's own catalog, not the catalogs it falls back on).
SCRIPT_BUILT: dict[str, Callable[[], Iterable[str]]] = {
    "state_": _alert_states,
    "answer_": lambda: _alert_states(exclude_open=True),  # an alert is not answered "open"
    "level_": _alert_levels,
    "section_": _alert_levels,
    "via_": _answered_via,
}


def test_every_key_the_alert_list_script_asks_for_is_known() -> None:
    for path, area in SCRIPTS.items():
        text = path.read_text()
        own = CATALOGS[area].strings
        used = {next(g for g in groups if g) for groups in _JS_LITERAL.findall(text)}
        assert len(used) > 10, path  # the scan saw the script
        assert used <= set(own), sorted(used - set(own))
        prefixes = set(_JS_BUILT.findall(text))
        assert prefixes == set(SCRIPT_BUILT), prefixes ^ set(SCRIPT_BUILT)
        for prefix, source in SCRIPT_BUILT.items():
            keys = {prefix + value for value in source()}
            assert keys and keys <= set(own), sorted(keys - set(own))
