"""Input readers (see the next commit)."""
