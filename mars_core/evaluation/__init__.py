"""Evaluation on held-out rooms and products: ranking metrics by stage ablation and adapter,
abstention, student vs teacher, and promotion of the candidate adapter to champion."""
