"""Simulated OCPP stations for tests, the benchmark and `volthaus simulate`."""
