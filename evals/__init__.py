"""Evaluation harness: honest replays of the graph, their metrics, baselines and reports."""
