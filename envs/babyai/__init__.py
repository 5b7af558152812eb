"""BabyAI levels with text observations."""
