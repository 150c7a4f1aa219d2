"""Regrouping students from mastery: proposals (exact size-bounded 1-D k-means or balanced mixed groups),
teacher constraints, plan application and the history of applied groupings.

Pure domain: model, solve, naming, repair, propose, history. Adapters: history_store (SQLite), sources
(mastery store, roster, plans, CSV). Composition: cli.
"""
