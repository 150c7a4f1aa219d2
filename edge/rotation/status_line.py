"""The live status line `edge run` prints so a newcomer sees the timer, the LEDs and the buzzer work."""

from __future__ import annotations

from edge.rotation.engine import Snapshot

WORDS = {"work": "WORK", "warning": "1 MIN LEFT", "transition": "MOVE", "paused": "PAUSED",
         "done": "DONE", "idle": "IDLE"}


def clock_text(seconds: float) -> str:
    s = max(0, int(seconds + 0.999))  # show 0:01 until the very end, like a kitchen timer
    return f"{s // 60:d}:{s % 60:02d}"


def phase_word(snap: Snapshot, warning_s: float | None = None) -> str:
    if snap.phase == "warning" and warning_s is not None and warning_s != 60:
        return f"{int(warning_s)} S LEFT" if warning_s < 60 else f"{warning_s / 60:g} MIN LEFT"
    return WORDS.get(snap.phase, snap.phase.upper())


def status_line(snap: Snapshot, outputs: dict[str, str], warning_s: float | None = None) -> str:
    """One line: phase, round, time left, LED and buzzer state (`warning_s`: the plan's warning length)."""
    leds = " ".join(f"{ch[0].upper()}:{outputs.get(ch, 'off')}" for ch in ("red", "amber", "green"))
    buzz = outputs.get("buzzer", "off")
    quiet = " (quiet)" if snap.quiet else ""
    if snap.status in ("idle", "done"):
        fault = f"  FAULT: {snap.fault}" if snap.fault else ""
        return f"{WORDS[snap.status]:<10} {snap.plan or '':<20} | {leds} buzzer:{buzz}{quiet}{fault}"
    where = ", ".join(f"{g}→{s}" for g, s in snap.assignments.items())
    return (f"{phase_word(snap, warning_s):<10} round {snap.round}/{snap.rounds} {clock_text(snap.remaining_s):>6} left"
            f" | {leds} buzzer:{buzz}{quiet} | {where}")
