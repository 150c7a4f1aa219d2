"""Cues on GPIO: patterns (pure data), the gpiozero driver, pin-factory choice and the teacher button."""
