"""Staff sign-in through the MSP's own Entra ID (OpenID Connect authorization-code flow, msal)."""
