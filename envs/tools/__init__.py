"""Simulated tool worlds with out-of-demonstration queries (OOD-Toolset)."""
