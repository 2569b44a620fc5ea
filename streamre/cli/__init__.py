"""The `streamre` command line."""
