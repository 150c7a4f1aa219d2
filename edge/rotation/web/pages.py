"""The three pages: student `/`, station board `/board`, teacher `/teacher` (+ plan and period editors).

Pages are drawn on the server from the same state document the API serves, then kept live by
static/live.js, which polls GET /api/v1/rotation (see edge/web/__init__.py for why polling).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from edge.config import WEEKDAYS
from edge.exc import ConfigError, EdgeError, PlanError, RotationError
from edge.rotation.periods import parse_periods
from edge.rotation.plan import KINDS, parse_plan
from edge.rotation.store import slug
from edge.rotation.web.auth import teacher_required
from edge.rotation.web.context import ctx
from edge.rotation.web.forms import KIND_LABELS, Form, periods_form, periods_from_form, plan_form, plan_from_form
from edge.rotation.web.launch import display_names, lesson_base, members
from edge.rotation.web.state import state_json

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)
FORM_FILE = "<form>"
ACTION_DONE = {"start": "Started {plan}.", "pause": "Paused.", "resume": "Resumed.", "extend": "Added a minute.",
               "skip": "Skipped to the next phase.", "restart": "Restarted the round.", "end": "Ended the rotation."}


@bp.get("/")
def student() -> str:
    state = state_json(ctx())
    group = request.args.get("group", "").strip()
    names = display_names(members(group)) if group else {}
    student = request.args.get("student", "")
    return render_template("student.html", state=state, group=group, lesson_base=lesson_base(),
                           students=names, student=student if student in names else "")


@bp.get("/board")
def board() -> str:
    return render_template("board.html", state=state_json(ctx()))


@bp.get("/teacher")
@teacher_required
def teacher() -> str:
    c = ctx()
    return render_template("teacher.html", state=state_json(c), plans=c.plans.plans(), broken=c.plans.broken(),
                           config_periods=c.config.rotation.periods, periods=_saved_periods())


def _saved_periods() -> list[Any]:
    try:
        return list(ctx().periods.periods())
    except EdgeError as e:
        flash(f"The saved period schedule could not be read ({e}); saving replaces it.", "error")
        return []


@bp.post("/teacher/act/<any(start, pause, resume, extend, skip, restart, end):action>")
@teacher_required
def act(action: str) -> BaseResponse:
    c = ctx()
    try:
        plan = c.plans.get(request.form.get("plan", "")) if action == "start" else None
        c.rotation.engine.act(action, plan)
    except PlanError as e:
        flash(f"Cannot start: {e.reason} ({request.form.get('plan', '')!r}).", "error")
    except RotationError as e:
        flash(f"{str(e)[0].upper()}{str(e)[1:]}.", "error")
    else:
        log.info("teacher page: %s", action)
        flash(ACTION_DONE[action].format(plan=plan.name if plan else ""), "ok")
    return redirect(url_for("pages.teacher"))


@bp.route("/teacher/plan", methods=["GET", "POST"])
@teacher_required
def plan_editor() -> BaseResponse | str | tuple[str, int]:
    c = ctx()
    if request.method == "GET":
        name = request.args.get("name")
        if name is None:
            return _editor(plan_form(None))
        try:
            return _editor(plan_form(c.plans.get(name)))
        except PlanError:
            abort(404, f"There is no saved plan called {name!r}.")
    form, doc = plan_from_form(request.form)
    original = form.values.get("original", "")
    try:
        plan = parse_plan(doc, FORM_FILE)
    except PlanError as e:
        form.error(e.key, e.reason)
        return _editor(form), 422
    with c.write_lock:
        exists = any(slug(p.name) == slug(plan.name) for p in c.plans.plans())
        if exists and slug(plan.name) != slug(original):
            form.error("plan.name", "a saved plan with this name exists; choose another name")
            return _editor(form), 422
        c.plans.save(plan)
        if original and slug(original) != slug(plan.name):
            with contextlib.suppress(PlanError):  # already gone is fine
                c.plans.delete(original)
    flash(f"Saved the plan {plan.name!r}.", "ok")
    return redirect(url_for("pages.teacher"))


def _editor(form: Form) -> str:
    return render_template("plan_edit.html", form=form, kinds=KINDS, kind_labels=KIND_LABELS)


@bp.post("/teacher/plan/delete")
@teacher_required
def plan_delete() -> BaseResponse:
    c = ctx()
    name = request.form.get("name", "")
    with c.write_lock:
        try:
            c.plans.delete(name)
        except PlanError as e:
            flash(f"Cannot delete {name!r}: {e.reason}.", "error")
        else:
            flash(f"Deleted the plan {name!r}.", "ok")
    return redirect(url_for("pages.teacher"))


@bp.route("/teacher/periods", methods=["GET", "POST"])
@teacher_required
def periods_editor() -> BaseResponse | str | tuple[str, int]:
    c = ctx()
    plan_names = [p.name for p in c.plans.plans()]
    if request.method == "GET":
        return _periods_page(periods_form(_saved_periods()), plan_names)
    form, items = periods_from_form(request.form)
    try:
        periods = parse_periods(items, FORM_FILE)
        known = {slug(n) for n in plan_names}
        for i, p in enumerate(periods):
            if slug(p.plan) not in known:
                raise ConfigError(FORM_FILE, f"periods[{i}].plan", f"there is no saved plan called {p.plan!r}")
    except ConfigError as e:
        form.error(e.key, e.reason)
        return _periods_page(form, plan_names), 422
    with c.write_lock:
        c.periods.save(periods)
    flash(f"Saved the period schedule ({len(periods)} period{'s' if len(periods) != 1 else ''}).", "ok")
    return redirect(url_for("pages.teacher"))


def _periods_page(form: Form, plan_names: list[str]) -> str:
    return render_template("periods.html", form=form, plan_names=plan_names, weekdays=WEEKDAYS,
                           config_periods=ctx().config.rotation.periods)
