"""Sycophancy (MM-SY): does the agent keep a correct answer when the user pushes back?"""
