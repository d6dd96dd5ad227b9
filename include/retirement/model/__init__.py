"""Frozen values of the domain, no I/O: identities, states, records."""
