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

# Run schemathesis against the service on both backends (installs it into a
# virtual environment first); SCHEMATHESIS_SEED and SCHEMATHESIS_EXAMPLES explore further.
fuzz:
    SCHEMATHESIS=$(bash .ci/schemathesis) TEST_DATABASE_URL={{pg_url}} cargo test --test api schema_fuzz -- --nocapture

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run

# Build the release binary and measure it: the hot path against /healthz,
# webhook ingest at 1/8/32 concurrent deliveries, on SQLite and on the
# PostgreSQL server at BENCH_DATABASE_URL (next to pgbench); writes
# docs/benchmarks.md. Extra arguments go to the load tool (see --help).
bench *args:
    cargo build --release -p billing-api -p billing-bench
    BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-{{pg_url}}} target/release/billing-bench --binary target/release/billing-api --out docs/benchmarks.md {{args}}
