"""The event-time clock that drives timers: a watermark that keeps moving when input stops.

While events flow, "now" is the newest event time seen. When the input goes idle, "now"
advances at the pace of the wall clock after ``idle_grace`` seconds, so silence is still
noticed when every customer is silent. Backfills (old event times) are not mistaken for
silence, because the watermark follows the events, not the wall clock.

>>> clock = EventClock(idle_grace=10)
>>> clock.observe(event_time=1000.0, wall=5000.0)
>>> clock.now(wall=5005.0)
1000.0
>>> clock.now(wall=5030.0)   # idle for 30 s: 20 s past the grace
1020.0
>>> EventClock(idle_grace=10).now(wall=42.0)   # nothing seen yet: the wall clock
42.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class EventClock:
    """A watermark over event time; wall-clock values are passed in, never read."""

    idle_grace: float = 10.0
    event_max: float | None = None
    arrived_wall: float | None = None

    def observe(self, event_time: float, wall: float) -> None:
        """Note an event (or a restored state's last event time) seen at ``wall``."""
        if self.event_max is None or event_time > self.event_max:
            self.event_max = event_time
        self.arrived_wall = wall

    def now(self, wall: float) -> float:
        """Event time as of ``wall``."""
        if self.event_max is None or self.arrived_wall is None:
            return wall
        idle = wall - self.arrived_wall
        return self.event_max + max(0.0, idle - self.idle_grace)
