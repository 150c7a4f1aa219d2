"""Classroom edge appliance: rotation timer on GPIO, lesson cache, mastery model, district sync."""

__version__ = "0.1.0"
