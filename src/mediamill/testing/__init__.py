"""Stand-ins for the outside world (providers, servers) used by tests and benchmarks."""
