"""The fleet as data: machines, their hours, identities, rollout gates, scenario time, the fast simulation.

Nothing here imports gevent or Locust.
"""
