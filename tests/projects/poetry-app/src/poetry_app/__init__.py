"""The test application of tests/test_poetry_plugin.py."""
