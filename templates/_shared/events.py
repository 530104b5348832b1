"""The structured event line templates print and tuneforge status reads back exactly.

One line per event: EVENT_PREFIX, then one JSON object with a "type" (progress, status, eval, result).
"""

EVENT_PREFIX = "##tuneforge-event "
