"""Plumbing every app stands on and that knows no domain: the page cache, the bounds on
input, the bounded JSON parser, the client's address behind proxies."""
