"""Staff sign-in through the MSP's own Entra ID (OpenID Connect authorization-code flow with PKCE, by
msal): `config.py` the settings, `flow.py` starting the flow and checking what comes back (the ID token's
issuer, audience, tenant and MFA proof), `mapping.py` the staff user and console groups an Entra account
gets, `views.py` the sign-in and callback pages, `admin.py` the mappings' admin."""
