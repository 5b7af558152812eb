"""Adversarial examples for small image classifiers: the digits data (`data`), the classifiers with an
optional learned subspace-projection layer (`models`) and the white-box attacks FGSM and PGD (`attacks`).

The env `evol/AdversarialImage-v0` (`env`) red-teams a served classifier with these attacks; the spectral
analysis and the defense trainer live in `evol.robust`.
"""
