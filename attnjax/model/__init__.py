"""The world and the agent: Atari and Quadrant environments, the attention actor-critic and the
Nature CNN, the uniform-attention baseline.
"""
