"""fleetstorm's Locust entry point: the agent user, the fleet's load shape, and fleetstorm's event listeners.

All logic lives in `harness/`: the user in harness/load/user.py, the shape in harness/load/shape.py,
the listeners in harness/hooks.py.
"""

from locust import events

from harness.hooks import install
from harness.load.shape import FleetShape
from harness.load.user import UpdateAgent

__all__ = ["FleetShape", "UpdateAgent"]

install(events)
