"""What several steps share: the per-user write engine, who is in scope, settling unknown writes."""
