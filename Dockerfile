# Multi-stage build: compile with the Rust toolchain, run on a slim Debian
# as an unprivileged user. SQLite is bundled and TLS roots are compiled in,
# so the runtime image needs no extra packages.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin billing-api

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app billing \
    && mkdir -p /app/data && chown billing /app/data
WORKDIR /app
COPY --from=build /src/target/release/billing-api /usr/local/bin/billing-api
COPY config /app/config
USER billing
# Production by default: the image refuses to start with the development
# tokens and webhook secret; give it real ones (see docs/production.md).
ENV BILLING_ENV=production \
    BILLING_CONFIG_DIR=/app/config \
    BILLING__SERVER__HOST=0.0.0.0 \
    DATABASE_URL=sqlite:///app/data/billing.db
EXPOSE 8080
ENTRYPOINT ["billing-api"]
CMD ["serve"]
