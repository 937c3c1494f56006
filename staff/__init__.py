"""Staff: who may sign in to the console and what each role may do (roles, sign-in, second factor,
lockout, sessions)."""
