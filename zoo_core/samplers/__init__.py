"""Samplers shipped with the core: one algorithm per module, maths in the docstring."""
