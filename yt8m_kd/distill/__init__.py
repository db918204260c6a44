"""Distillation losses, SAKD and the teacher cache."""
