"""Reasoning nodes behind the Reasoner protocol (rules today; LLM reasoners plug in the same way)."""
