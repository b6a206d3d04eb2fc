"""`poetry jib build|push|docker`: the Poetry application plugin."""
