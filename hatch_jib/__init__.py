"""`hatch build -t jib`: the Hatch builder target (see hooks.py)."""
