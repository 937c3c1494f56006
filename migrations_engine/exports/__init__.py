"""Scheduled audit exports: periods written to files with a signed manifest, and their verification."""
