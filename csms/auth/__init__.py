"""API tokens: bearer tokens with a role and a scope, stored hashed."""
