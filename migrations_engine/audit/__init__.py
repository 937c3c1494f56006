"""The append-only, hash-chained audit log: its models, the writer and chain check, and the CSV/JSON
export."""
