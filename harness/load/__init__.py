"""The load: timing wheel and dispatcher, the agents and their Locust user, the load shape, the workers' share."""
