"""hello-jib: a small web app, served from a container image that `hatch build -t jib` built."""

from __future__ import annotations

__version__ = "0.1.0"

#: What the page says under its title (the README's demo changes this line and pushes again).
TAGLINE = "Built with hatch build -t jib: no Dockerfile, no Docker daemon."
