"""Graph paths built from keys the console does not choose (user principal names, ids)."""

from __future__ import annotations

from urllib.parse import quote


def user_path(key: str) -> str:
    """`/users/{id | userPrincipalName}` as Get user documents it
    (https://learn.microsoft.com/graph/api/user-get, HTTP request tip): the '#' of a B2B guest's `#EXT#`
    encoded as %23, and a UPN that starts with '$' in the key form `/users('$x@y.com')` (with a slash,
    Graph answers 400: only system query options start with '$'), an apostrophe doubled inside it."""
    if key.startswith("$"):
        return "/users('" + quote(key.replace("'", "''"), safe="@$") + "')"
    return "/users/" + quote(key, safe="@")
