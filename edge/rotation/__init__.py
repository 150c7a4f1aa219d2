"""The rotation timer: plans, the pure engine (no gpiozero), persistence, schedules, the service loop."""
