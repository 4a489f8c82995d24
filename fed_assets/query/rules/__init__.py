"""Planner rules, one per module, each a function named like its module (see planner.RULES)."""
