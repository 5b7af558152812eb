"""Adversarial robustness through the spectrum: the subspace analysis of clean and perturbation
features (`spectral`), the independence criterion (`hsic`), the defense trainer with its baselines
(`trainer`) and the robust-accuracy evaluation (`evaluate`). `evol robust analyze|train|eval` runs them.
"""
