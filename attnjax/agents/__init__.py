"""Trained agents as things to share and score: publishing final parameters, evaluating full games,
model cards.
"""
