"""PPO training: the config, the loss, the compiled iteration, the loop around it, run folders,
checkpoints, tracking and sweep files.
"""
