"""pyjib's core: the image model, layer builder, local and registry sources and sinks.

It knows nothing of Hatch or Poetry; their plugins translate into this package's build plan.
"""

__version__ = "0.1.0.dev0"
