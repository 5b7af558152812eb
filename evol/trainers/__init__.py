"""Trainers: one config dataclass and one trainer class per algorithm (`evol train NAME`)."""

TRAINERS = {
    "bc": ("evol.trainers.bc", "BCConfig", "BCTrainer"),
    "agentevol": ("evol.trainers.agentevol", "AgentEvolConfig", "AgentEvolTrainer"),
}
