"""pyjib's end-to-end test app."""
