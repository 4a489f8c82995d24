"""Placeholder until this kind's case lands (the owner overwrites this file)."""
