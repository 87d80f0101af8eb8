"""One module per scenario of the benchmark issue."""
