"""The decision graph: typed state, nodes, routing edges and the runner that feeds snapshots in."""
