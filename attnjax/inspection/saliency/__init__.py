"""Batched input saliency (gradient, SmoothGrad, VarGrad): what is asked (config), how it is
computed (methods), laid on the machine (execution) and exported (export).
"""
