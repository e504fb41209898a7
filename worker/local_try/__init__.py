"""``mull try``: an agent run on a local checkout, with no GitHub at all."""
