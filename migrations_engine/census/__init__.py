"""The census: reading a tenant's users, per-user MFA states, registration and policies from Graph."""
