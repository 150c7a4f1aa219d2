"""Mastery: BKT parameters, evidence replay and the mastery service."""
