"""EvolGym server: serves registered envs over HTTP (`python -m server ENV...`), and a model as
an OpenAI-compatible agent server (`server.agent_app`). Imports `envs` only; the env client,
`RemoteEnv`, lives in `envs.remote` (re-exported as `server.client`)."""

TOKEN_ENV = "EVOL_TOKEN"  # the env server's bearer token when none is given on the command line
AGENT_TOKEN_ENV = "EVOL_AGENT_TOKEN"  # the agent server's
