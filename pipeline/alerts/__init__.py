"""Alerts: what changed between a published snapshot and the one before, for webhooks and
an event stream.

:mod:`~pipeline.alerts.rules` finds the changes (entered or left the top N, signal changes,
new 52-week highs, unusual volume), :mod:`~pipeline.alerts.store` keeps subscriptions and
records each comparison once in a Redis stream, :mod:`~pipeline.alerts.deliver` posts them to
the subscribers' webhooks (signed, retried, dead-lettered) from the service's background.
"""
