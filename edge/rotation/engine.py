"""The rotation engine: a pure state machine over a Clock (no gpiozero, no threads of its own).

Every deadline is `origin + offset_in_plan + shift` on the monotonic clock: offsets come from the plan,
`shift` collects what teachers did (pauses, extra minutes, skips, restarts). Nothing is accumulated from
sleeps, so there is no drift, and a pause shifts only what follows it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from edge.clock import EPS, Clock
from edge.exc import PlanError, RotationError, StateError
from edge.rotation.plan import Plan, parse_plan

log = logging.getLogger(__name__)

Status = Literal["idle", "running", "paused", "done"]
Stage = Literal["work", "transition"]
# Every teacher action and the statuses it applies in (the pages enable their buttons from this table).
ACTIONS: dict[str, tuple[Status, ...]] = {
    "start": ("idle", "done"), "pause": ("running",), "resume": ("paused",), "extend": ("running", "paused"),
    "skip": ("running", "paused"), "restart": ("running", "paused"), "end": ("running", "paused"),
}
EXTEND_S = 60.0
STATE_VERSION = 1


class StateStore(Protocol):
    """Where the engine persists itself (atomic write); `load` raises StateError when the file is corrupt."""

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Snapshot:
    """What every page, the status line and the cue driver show; all times are seconds."""

    status: Status
    phase: str  # idle | work | warning | transition | paused | done
    plan: str | None
    round: int
    rounds: int
    remaining_s: float  # until the current phase ends (frozen while paused)
    stage_remaining_s: float  # until the work period / transition ends
    phase_deadline: float | None  # monotonic; None when nothing counts down
    assignments: dict[str, str] = field(default_factory=dict)
    next_assignments: dict[str, str] = field(default_factory=dict)
    underlying_phase: str = "idle"  # the phase a pause froze
    quiet: bool = False
    fault: str | None = None
    seq: int = 0  # increases with every change; pages use it to notice updates


Listener = Callable[[Snapshot], None]


class Engine:
    """Runs one plan at a time. Thread-safe: the button, the web pages and the service loop share it."""

    def __init__(self, clock: Clock, store: StateStore | None = None, quiet: bool = False) -> None:
        self.clock = clock
        self._store = store
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._plan: Plan | None = None
        self._status: Status = "idle"
        self._round = 0
        self._stage: Stage = "work"
        self._origin = 0.0
        self._shift = 0.0
        self._paused_at: float | None = None
        self._quiet = quiet
        self._fault: str | None = None
        self._seq = 0
        self._last_phase = "idle"

    # ----- reading -----------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call `listener(snapshot)` after every change (actions and phase boundaries)."""
        with self._lock:
            self._listeners.append(listener)

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def _now(self) -> float:
        """The engine's 'now': frozen at the pause moment while paused."""
        return self._paused_at if self._paused_at is not None else self.clock.monotonic()

    def _stage_offset_end(self) -> float:
        assert self._plan is not None
        start = self._plan.round_start_s(self._round)
        return start + self._plan.work_s if self._stage == "work" else start

    def _stage_end(self) -> float:
        return self._origin + self._stage_offset_end() + self._shift

    def _phase_at(self, now: float) -> str:
        if self._status in ("idle", "done"):
            return self._status
        assert self._plan is not None
        if self._stage == "transition":
            return "transition"
        warn = self._plan.warning_seconds
        return "warning" if warn > 0 and self._stage_end() - now <= warn + EPS else "work"

    def _phase_end(self, now: float) -> float | None:
        if self._status in ("idle", "done"):
            return None
        assert self._plan is not None
        end = self._stage_end()
        if self._phase_at(now) == "work" and self._plan.warning_seconds > 0:
            return end - self._plan.warning_seconds
        return end

    def next_deadline(self) -> float | None:
        """Monotonic time of the next phase boundary (None when idle, done or paused)."""
        with self._lock:
            if self._status != "running":
                return None
            return self._phase_end(self.clock.monotonic())

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._now()
            phase = self._phase_at(now)
            plan = self._plan
            if plan is None or self._status in ("idle", "done"):
                return Snapshot(self._status, phase, plan.name if plan else None, self._round,
                                plan.round_count if plan else 0, 0.0, 0.0, None, quiet=self._quiet,
                                underlying_phase=phase, fault=self._fault, seq=self._seq)
            end = self._phase_end(now)
            assert end is not None
            nxt = plan.assignments(self._round + 1) if self._round < plan.round_count else {}
            return Snapshot(
                status=self._status, phase="paused" if self._status == "paused" else phase, plan=plan.name,
                round=self._round, rounds=plan.round_count, remaining_s=max(0.0, end - now),
                stage_remaining_s=max(0.0, self._stage_end() - now),
                phase_deadline=end if self._status == "running" else None,
                assignments=plan.assignments(self._round), next_assignments=nxt, underlying_phase=phase,
                quiet=self._quiet, fault=self._fault, seq=self._seq,
            )

    # ----- time passing ------------------------------------------------------------------------------
    def tick(self) -> bool:
        """Apply every boundary that has passed; True if the phase changed. Call often (the service loop)."""
        with self._lock:
            if self._status != "running":
                return False
            now = self.clock.monotonic()
            moved = False
            while self._status == "running" and now + EPS >= self._stage_end():
                self._next_stage()
                moved = True
            if moved or self._phase_at(now) != self._last_phase:
                self._changed()
                return True
            return False

    def _next_stage(self) -> None:
        """Move to the following stage; the deadlines stay those of the plan (no shift change)."""
        assert self._plan is not None
        if self._stage == "transition":
            self._stage = "work"
        elif self._round >= self._plan.round_count:
            self._status = "done"
            log.info("rotation %r done", self._plan.name)
        else:
            self._round += 1
            if self._plan.transition_seconds > 0:
                self._stage = "transition"

    def _changed(self) -> None:
        self._seq += 1
        self._last_phase = self._phase_at(self._now())
        if self._store is not None:
            self._store.save(self._to_state())
        snap = self.snapshot()
        for listener in list(self._listeners):
            listener(snap)

    # ----- teacher actions ---------------------------------------------------------------------------
    def act(self, action: str, plan: Plan | None = None) -> Snapshot:
        """Apply one teacher action by name (the button, pages and API all come through here)."""
        handlers: dict[str, Callable[[], None]] = {
            "pause": self.pause, "resume": self.resume, "extend": self.extend, "skip": self.skip,
            "restart": self.restart_round, "end": self.end, "toggle": self.toggle_pause,
        }
        if action == "start":
            if plan is None:
                raise RotationError("start needs a plan")
            self.start(plan)
        elif action in handlers:
            handlers[action]()
        else:
            raise RotationError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        return self.snapshot()

    def _require(self, action: str, what: str) -> None:
        if self._status not in ACTIONS[action]:
            raise RotationError(f"cannot {what}: the rotation is {self._status}")

    def start(self, plan: Plan) -> None:
        with self._lock:
            self._require("start", what="start (end the running plan first)")
            self._plan = plan
            self._status = "running"
            self._round, self._stage = 1, "work"
            self._origin, self._shift = self.clock.monotonic(), 0.0
            self._paused_at = None
            self._fault = None
            log.info("rotation %r started: %d rounds", plan.name, plan.round_count)
            self._changed()

    def pause(self) -> None:
        with self._lock:
            self._require("pause", what="pause")
            self.tick()
            if self._status != "running":  # it ended exactly now
                return
            self._paused_at = self.clock.monotonic()
            self._status = "paused"
            self._changed()

    def resume(self) -> None:
        with self._lock:
            self._require("resume", what="resume")
            assert self._paused_at is not None
            self._shift += self.clock.monotonic() - self._paused_at
            self._paused_at = None
            self._status = "running"
            self._changed()

    def toggle_pause(self) -> None:
        with self._lock:
            if self._status == "paused":
                self.resume()
            else:
                self.pause()

    def extend(self, seconds: float = EXTEND_S) -> None:
        """Add time to the current work period or transition (a warning turns back into work if needed)."""
        with self._lock:
            self._require("extend", what="add a minute")
            self.tick()
            if self._status in ("running", "paused"):
                self._shift += seconds
                self._changed()

    def skip(self) -> None:
        """End the current phase now: work→warning, warning→transition (or next round, or done)."""
        with self._lock:
            self._require("skip", what="skip")
            self.tick()
            if self._status not in ("running", "paused"):
                return
            now = self._now()
            phase, end = self._phase_at(now), self._phase_end(now)
            assert end is not None
            self._shift -= end - now
            if phase != "work" or (self._plan and self._plan.warning_seconds == 0):
                self._next_stage()
            self._changed()

    def restart_round(self) -> None:
        """Start this round's work period again from its beginning (in a transition: the coming round)."""
        with self._lock:
            self._require("restart", what="restart the round")
            self.tick()
            if self._status not in ("running", "paused"):
                return
            assert self._plan is not None
            self._stage = "work"
            self._shift = self._now() - self._origin - self._plan.round_start_s(self._round)
            self._changed()

    def end(self) -> None:
        with self._lock:
            self._require("end", what="end")
            self._status = "done"
            self._paused_at = None
            log.info("rotation ended by the teacher")
            self._changed()

    def set_quiet(self, quiet: bool) -> None:
        with self._lock:
            self._quiet = quiet
            self._changed()

    def set_fault(self, message: str | None) -> None:
        """Show the fault cue with `message` on every page (None clears it); a started plan clears it too."""
        with self._lock:
            if self._fault != message:
                self._fault = message
                self._changed()

    # ----- persistence -------------------------------------------------------------------------------
    def _to_state(self) -> dict[str, Any]:
        """A document that survives a reboot: remaining time is stored, plus the wall time of saving."""
        state: dict[str, Any] = {"version": STATE_VERSION, "status": self._status, "quiet": self._quiet,
                                 "saved_wall": self.clock.time()}
        if self._plan is not None:
            state["plan"] = self._plan.to_toml()
            state["round"] = self._round
            state["stage"] = self._stage
            if self._status in ("running", "paused"):
                state["stage_remaining_s"] = self._stage_end() - self._now()
        return state

    def restore(self) -> None:
        """Resume from the store after a restart; wall time that passed while down counts unless paused.

        A corrupt or unreadable state file leaves the engine idle with a fault the cues and pages show.
        """
        if self._store is None:
            return
        with self._lock:
            try:
                state = self._store.load()
                if state is None:
                    return
                self._from_state(state)
            except (StateError, PlanError, KeyError, TypeError, ValueError) as e:
                log.warning("rotation state could not be restored (%s); starting idle", e)
                self._plan, self._status, self._round = None, "idle", 0
                self._paused_at = None
                self._fault = "saved rotation state was corrupt; the timer was reset"
            self._changed()
            self.tick()

    def _from_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise StateError(f"unknown state version {state.get('version')!r}")
        self._quiet = bool(state["quiet"])
        status = state["status"]
        if status not in ("idle", "running", "paused", "done"):
            raise StateError(f"unknown status {status!r}")
        if "plan" not in state:
            self._status = "idle" if status in ("running", "paused") else status
            return
        plan = parse_plan(state["plan"], "<saved state>")
        round_no, stage = int(state["round"]), state["stage"]
        if not 1 <= round_no <= plan.round_count or stage not in ("work", "transition"):
            raise StateError(f"round {round_no} / stage {stage!r} does not fit the plan")
        self._plan, self._status, self._round, self._stage = plan, status, round_no, stage
        if status not in ("running", "paused"):
            return
        remaining = float(state["stage_remaining_s"])
        now = self.clock.monotonic()
        if status == "running":
            remaining -= max(0.0, self.clock.time() - float(state["saved_wall"]))
        self._origin = now
        self._shift = now + remaining - self._origin - self._stage_offset_end()
        self._paused_at = now if status == "paused" else None
