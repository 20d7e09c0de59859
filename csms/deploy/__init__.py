"""Running Volthaus as several nodes: the local cluster (processes on one machine, what the
tests and `make cluster` start); the container files are in docker/."""
