"""One-off investigations, run by hand: ``python -m bench.tools.<name>`` (not ``make bench``).

Each answered one question; docs/BENCHMARKS.md ("Investigations") records what it found.
"""
