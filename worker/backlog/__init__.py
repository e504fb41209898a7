"""Each repository's backlog: what waits for an agent, what runs, and what is released for review."""
