"""pyjib's on-disk cache of layers, pulled blobs and base-image documents."""

from jib.cache.store import Cache

__all__ = ["Cache"]
