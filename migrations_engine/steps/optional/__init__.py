"""The steps a run option switches on: trusted IPs to a named location, remember-MFA to sign-in frequency."""
