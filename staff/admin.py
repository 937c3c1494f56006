"""The staff app's admins on the console site (each lives with its feature; importing registers it)."""
