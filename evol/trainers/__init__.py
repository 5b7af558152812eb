"""Trainers: one config dataclass and one trainer class per algorithm (`evol train NAME`)."""

TRAINERS = {
    "bc": ("evol.trainers.bc", "BCConfig", "BCTrainer"),
    "agentevol": ("evol.trainers.agentevol", "AgentEvolConfig", "AgentEvolTrainer"),
    "loop": ("evol.trainers.loop", "LoopConfig", "SelfImproveTrainer"),
    "dpo": ("evol.trainers.dpo", "PreferenceConfig", "PreferenceTrainer"),
    "inverse-q": ("evol.trainers.inverse_q", "InverseQConfig", "InverseQRun"),
    "critic": ("evol.trainers.critic", "CriticConfig", "CriticTrainer"),
    "grpo": ("evol.trainers.grpo", "GRPOConfig", "GRPORun"),
    "gpo": ("evol.trainers.gpo", "GPOConfig", "GPOTrainer"),
    "rm": ("evol.trainers.rm", "RMConfig", "RMTrainer"),
}
