"""A point-in-time picture of the streams, for metrics (read on a scrape, not kept)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamStats:
    open_streams: int
    published: int  # deltas the hub numbered (this epoch)
    sent: int  # deltas taken from subscriber queues to be written, over every stream
    merged: int  # deltas a newer one of the same entity replaced in a full queue
    dropped: int  # deltas lost when a subscriber too slow to keep up was ended
    slow_consumers_ended: int
    resumed: int  # resumes served from the replay buffer
    resynced: int  # resumes the buffer no longer covered: a fresh snapshot instead
    upstream_resyncs: int  # fresh snapshots after the sync socket reconnected
    queued: int  # deltas waiting in all subscriber queues now
    max_queued: int  # the longest subscriber queue now (the worst lag, in deltas)
    queue_capacity: int
    replay_buffered: int
    replay_capacity: int
