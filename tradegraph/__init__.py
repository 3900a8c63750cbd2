"""tradegraph: an LLM-orchestrated trading system built on one LangGraph state machine."""

__version__ = "0.1.0"
