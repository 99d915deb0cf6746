"""The embedded reference update server (run alone with `python -m harness.server`)."""
