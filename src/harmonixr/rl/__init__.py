"""Reinforcement learning with musical rewards (issue 6); so far the reward functions."""
