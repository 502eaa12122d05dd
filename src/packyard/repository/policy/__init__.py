"""Package policy: block rules and curated allowlists."""
