"""What a person watches during a run: the progress line, the Fleet tab in Locust's web UI, the web login."""
