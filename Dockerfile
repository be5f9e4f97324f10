# Multi-stage build of a static redis-pool-operator binary on a distroless, non-root base, for
# machines that reach Docker Hub and gcr.io:
#   docker build -t redis-pool-operator:0.1.0 .
# CI builds the same layout with hack/image (buildah, FROM scratch, from Debian's packages) and
# runs it as the chart deploys it (tests/image.rs, which also checks that USER, ENTRYPOINT, CMD
# and EXPOSE here match that image).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY examples/pool-app examples/pool-app
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p redis-pool-operator \
 && cp target/x86_64-unknown-linux-musl/release/redis-pool-operator /redis-pool-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /redis-pool-operator /redis-pool-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/redis-pool-operator"]
CMD ["run"]
