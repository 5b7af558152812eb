"""Reward-model judging: RMB-format preference data (`data`) and `evol/RewardJudge-v0` (`env`)."""
