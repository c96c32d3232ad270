"""Identity and access: accounts, sign-in, tokens, API keys, members, invites, UI sessions.

One idea per module:

- `passwords`     Argon2id hashing (pwdlib), run off the event loop
- `throttle`      failed-login limits per account and per client address (memory or Redis)
- `opaque`        random secrets shown once and stored as SHA-256 digests
- `tokens`        short-lived JWT access tokens (HS256, key derived from SECRET_KEY)
- `refresh`       rotating refresh tokens; reuse revokes the whole family
- `directory`     read models shared by the services (users, memberships)
- `accounts`      sign-up, password sign-in, users
- `members`       a tenant's members: roles, removal, ownership, the tenants of a user
- `invites`       invitations by link or email address
- `api_keys`      personal API keys scoped to a tenant and a role
- `sessions`      browser sessions (the browser keeps only the session id)
- `authenticator` bearer credentials (access token or API key) -> `TenantContext`
- `oidc`          accounts from an OpenID Connect provider, linked by verified email
- `identity`      builds all of the above from settings

Every check of a role goes through `TenantContext.require` (core/context.py); every
request re-reads the membership, so a removed member loses access at once.
"""
