"""The OCI distribution client: auth, pull and push."""
