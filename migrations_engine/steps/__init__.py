"""The pipeline's steps: small, check-then-act, resumable, dry-run aware."""
