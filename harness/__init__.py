"""fleetstorm: load-test update servers with fleets of emulated machines, on Locust."""
