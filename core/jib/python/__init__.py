"""From a Python project to layer entries: the target interpreter, locked dependencies, wheels
chosen and fetched for the target, and a virtual environment installed without pip."""
