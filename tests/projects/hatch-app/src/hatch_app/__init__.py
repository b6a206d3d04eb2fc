"""hatch-app: what `hatch build -t jib` puts in an image."""
