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

from edge import limits
from edge.config import WEEKDAYS
from edge.exc import ConfigError, EdgeError, GroupingError, MasteryUnavailable, PlanError, PlanErrors, RotationError
from edge.rotation.engine import ACTIONS
from edge.rotation.groups.model import defaults
from edge.rotation.groups.sources import focus_skills
from edge.rotation.periods import parse_periods, periods_starting
from edge.rotation.plan import KINDS, parse_plan
from edge.rotation.store import slug
from edge.rotation.web import regroup
from edge.rotation.web.auth import teacher_required
from edge.rotation.web.context import ctx
from edge.rotation.web.forms import KIND_LABELS, Form, periods_form, periods_from_form, plan_form, plan_from_form
from edge.rotation.web.launch import display_names, lesson_base, members
from edge.rotation.web.state import state_json

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)
FORM_FILE = "<form>"
# The words of each teacher action (edge.rotation.engine.ACTIONS says which exist and when they apply).
ACTION_WORDS = {
    "start": ("Start", "Started {plan}."), "pause": ("Pause", "Paused."), "resume": ("Resume", "Resumed."),
    "extend": ("+1 minute", "Added a minute."), "skip": ("Skip to next phase", "Skipped to the next phase."),
    "restart": ("Restart round", "Restarted the round."), "end": ("End rotation", "Ended the rotation."),
}


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
    c = ctx()
    return render_template("board.html", state=state_json(c), setup=c.teacher_pin.awaiting_setup())


@bp.get("/teacher")
@teacher_required
def teacher() -> str:
    c = ctx()
    actions = [(name, ACTION_WORDS[name][0], " ".join(when)) for name, when in ACTIONS.items()]
    plans = c.plans.plans()
    startable = {slug(p.name) for p in plans}
    stranded = [p for p in c.all_periods() if slug(p.plan) not in startable]  # the bell would start nothing
    return render_template("teacher.html", state=state_json(c), plans=plans, broken=c.plans.broken(),
                           config_periods=c.config.rotation.periods, periods=_saved_periods(), actions=actions,
                           stranded=stranded)


def _saved_periods() -> list[Any]:
    try:
        return list(ctx().periods.periods())
    except EdgeError as e:
        flash(f"The saved period schedule could not be read ({e}); saving replaces it.", "error")
        return []


@bp.post(f"/teacher/act/<any({', '.join(ACTIONS)}):action>")
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
        flash(ACTION_WORDS[action][1].format(plan=plan.name if plan else ""), "ok")
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
    except PlanErrors as e:  # every problem beside its field
        for err in e.errors:
            form.error(err.key, err.reason)
        return _editor(form), 422
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
    return render_template("plan_edit.html", form=form, kinds=KINDS, kind_labels=KIND_LABELS, limits=limits)


@bp.post("/teacher/plan/delete")
@teacher_required
def plan_delete() -> BaseResponse:
    c = ctx()
    name = request.form.get("name", "")
    with c.write_lock:
        if used := periods_starting(name, c.all_periods()):
            flash(f"Cannot delete {name!r}: the bell of {', '.join(map(repr, used))} starts it. Change those "
                  "periods first.", "error")
            return redirect(url_for("pages.teacher"))
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


# -- regroup by mastery ---------------------------------------------------------------------------------------

REGROUP_FIELDS = ("plan", "skill", "groups", "min_size", "max_size", "mode", "margin", "min_evidence")


@bp.route("/teacher/regroup", methods=["GET"])
@teacher_required
def regroup_page() -> str | tuple[str, int]:
    c = ctx()
    plans = c.plans.plans()
    args = {k: v for k, v in request.args.items() if k in REGROUP_FIELDS and v}
    view: dict[str, Any] = {"plans": plans, "args": args, "proposal": None, "error": None, "skills": [],
                            "names": regroup.display_names(c), "history": [], "change": [], "apart": ""}
    if "plan" not in args:
        return render_template("regroup.html", **view)
    try:
        plan = regroup.saved_plan(c, args["plan"])
        view["skills"] = focus_skills(c.config, plan)
        if request.args.get("previous"):  # the page's own cards: constraints from their checkboxes
            previous = regroup.form_groups(request.args, request.args.getlist("student"),
                                           [g.name for g in plan.groups])
            args = {**args, **regroup.form_constraints(request.args, previous)}
            view["apart"] = request.args.get("apart", "")
        req = regroup.parse_request(args, defaults(c.config))
        proposal, _ = regroup.make_proposal(c, req)
        view["proposal"] = proposal
        view["pins"] = dict(req.constraints.pins)
        view["history"], view["change"] = regroup.history(c, proposal.skill, limit=5)
    except GroupingError as e:
        view["error"] = str(e)
        return render_template("regroup.html", **view), 503 if isinstance(e, MasteryUnavailable) else 422
    return render_template("regroup.html", **view)


@bp.post("/teacher/regroup/apply")
@teacher_required
def regroup_apply() -> BaseResponse | tuple[str, int]:
    c = ctx()
    form = request.form
    try:
        args = {k: v for k, v in form.items() if k in REGROUP_FIELDS and v}
        plan = regroup.saved_plan(c, args.get("plan", ""))
        names = [g.name for g in plan.groups]
        chosen = regroup.form_groups(form, form.getlist("student"), names)
        req = regroup.parse_request({**args, **regroup.form_constraints(form, chosen)}, defaults(c.config))
        groups = [(name, [s for s, g in chosen.items() if g == name]) for name in names]
        new_plan, gid, final = regroup.apply(c, req, [(n, m) for n, m in groups if m])
    except GroupingError as e:
        flash(f"Not applied: {e}.", "error")
        back: dict[str, Any] = {k: v for k, v in form.items() if k in REGROUP_FIELDS}
        return redirect(url_for("pages.regroup_page", **back))
    moved = len(final.moved)
    flash(f"Applied to {new_plan.name!r}: {moved} student{'s' if moved != 1 else ''} change group; the new groups "
          f"take effect when {new_plan.name!r} next starts.", "ok")
    log.info("teacher page: regrouped plan (grouping %d)", gid)
    return redirect(url_for("pages.teacher"))
