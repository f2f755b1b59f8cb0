"""Who is calling, and what they may reach.

Owns: the roles (`Role`) and the access a route asks for (`Access`); the `Principal` a request acts as,
with the staff ids whose customers it may see; staff lookups (by WeCom userid, by team) and member sync;
API keys (created once, stored as SHA-256, looked up, revoked); the one-time `state` of a WeCom sign-in;
tenants and their WeCom apps and webhook secrets as the operator provisions them; the session secret.

Must not: speak HTTP (the API parses requests, sets cookies and maps errors), call WeCom (callers fetch
userids and member lists and hand them in), or decide anything about messages.
"""

from copilot.identity.roles import Access, Principal, Role

__all__ = ["Access", "Principal", "Role"]
