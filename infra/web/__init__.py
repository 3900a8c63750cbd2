"""The read-only web dashboard over the journal (an adapter: the composition root wires it)."""
