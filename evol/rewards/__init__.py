"""Reward models: one interface (`evol.rewards.base.RewardModel`), backends, the RMB benchmark."""
