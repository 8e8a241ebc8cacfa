# Everyday tasks. `just --list` shows them.

pg_url := env_var_or_default("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")

# Start the service on SQLite with the development configuration.
run:
    cargo run

# Run every test (PostgreSQL too when TEST_DATABASE_URL is set).
test:
    cargo test --workspace

# Run every test on SQLite and on the PostgreSQL server at TEST_DATABASE_URL.
test-postgres:
    TEST_DATABASE_URL={{pg_url}} cargo test --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run
