"""Migration runs: starting, approving and cancelling them, the runner that takes one tenant through the
pipeline, the sweeper, and the run pages."""
