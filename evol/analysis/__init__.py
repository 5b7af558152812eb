"""Analyses of models on env episodes (`evol analyze ...`): probes that read a model's internals
on what it did, rather than scoring what it did."""
