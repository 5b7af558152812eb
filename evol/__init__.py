"""EvolGym: rollouts, trajectories, trainers and the `evol` CLI."""
