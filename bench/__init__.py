"""The throughput benchmark (see bench/README.md). Not part of the console."""
