"""Math word problems with step-level critique (MathCritique) and Socratic guidance (GSI)."""
