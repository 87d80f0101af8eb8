"""A point-in-time picture of one login's replication, for metrics (read on a scrape)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    holding: bool  # this replica writes the login's delta log (else it mirrors it)
    log_step: int  # the last step appended (holder) or applied (follower); 0: none yet
    steps_appended: int  # steps this replica appended as holder (this live state)
    append_seconds: float  # their append round trips, summed
    pending_records: int  # records waiting for the holder's next append
    mirror_reloads: int  # snapshots a follower had to load again (a break in the log)
    feed_up: bool  # a follower reads the log (a holder: always)
