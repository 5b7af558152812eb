"""EvolGym server: serves registered envs over HTTP; `RemoteEnv` is its client."""
