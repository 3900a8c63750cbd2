"""Deterministic tools: market data, technical analysis, risk, execution. Imports nothing above it."""
