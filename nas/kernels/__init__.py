"""Triton kernels for the candidate ops, each behind a torch.autograd.Function
with a pure-PyTorch reference that is the CPU path.

Empty for now: the blocks of ``nas.spaces`` run their PyTorch reference
everywhere until the kernels land (see the project's issue on CUDA kernels).
Imports nothing from the other parts of nas.
"""
