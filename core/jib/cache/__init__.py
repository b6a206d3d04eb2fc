"""pyjib's on-disk cache of layers, pulled blobs and base-image documents."""

from jib.cache.prune import DEFAULT_MAX_SIZE, MAX_SIZE_ENV, max_size_from, parse_size, prune
from jib.cache.store import Cache

__all__ = ["DEFAULT_MAX_SIZE", "MAX_SIZE_ENV", "Cache", "max_size_from", "parse_size", "prune"]
