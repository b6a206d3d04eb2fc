"""pyjib lock fixture."""
