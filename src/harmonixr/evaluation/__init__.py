"""Evaluation: likelihood, infill quality, statistics, reports."""
