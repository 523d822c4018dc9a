//! Benchmark tools for clinic-auth (see `bench/README.md`): seeding members, factors,
//! sign-ins in flight and audit events through the store (not the HTTP path), load
//! generators for the JSON API, and the floors of the machine they run on (bare
//! single-row write transactions, bare Argon2id). Each tool is a binary under
//! `src/bin/`; nothing here is part of the server.
