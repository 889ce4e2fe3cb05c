"""Test support: what the tests of every directory share (servers, emulators, the spec's
samples, private PostgreSQL/Redis/NATS, builders). Fixtures live in the conftest.py files;
everything else a test imports is here, so no test imports another test directory."""
