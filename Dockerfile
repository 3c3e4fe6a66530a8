# docker build --network host -t huatuo/huatuo-bamai:latest .
# podman build --format docker --network host -t huatuo/huatuo-bamai:latest .
#   (--format docker: the OCI format has no HEALTHCHECK or SHELL)
#   No registry? Build a local base first (packaging/base-image.sh), then add
#     --build-arg BASE=localhost/debian:bookworm-slim --build-arg BUILDER_BASE=localhost/debian:bookworm-slim
#   Behind a TLS-intercepting proxy, hand npm and deno the CA bundle:
#     --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
# Run: see deploy/kubernetes/daemonset.yaml and deploy/compose/docker-compose.yml; by hand:
#   podman run --network host --pid host --cgroupns host \
#     --cap-drop all --cap-add SYS_ADMIN --cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE \
#     --cap-add DAC_READ_SEARCH --security-opt no-new-privileges --read-only --tmpfs /tmp \
#     -v /sys:/sys:ro -v /sys/fs/cgroup:/sys/fs/cgroup -v /sys/kernel/tracing:/sys/kernel/tracing \
#     huatuo/huatuo-bamai:latest
ARG BASE=debian:bookworm-slim
ARG BUILDER_BASE=debian:bookworm-slim

# Builder: ./build.sh installs Deno (npm registry) and the BPF toolchain
# (Debian), compiles the CO-RE objects and the agent into _output/.
FROM ${BUILDER_BASE} AS builder
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/ca DENO_CERT=/run/secrets/ca; fi; \
    ./build.sh
# Only what the agent runs: no test objects, no compile log.
RUN mkdir -p /dist/bpf \
 && cp -a _output/bin /dist/ \
 && if [ -d _output/lib ]; then cp -a _output/lib /dist/; fi \
 && cp -a _output/bpf/*.o /dist/bpf/ \
 && cp huatuo-bamai.conf /dist/

FROM ${BASE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="huatuo-bamai" \
      org.opencontainers.image.description="HUATUO kernel observability agent: eBPF metrics, kernel events, SSE" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.url="https://huatuo.tech" \
      org.opencontainers.image.vendor="huatuo-bamai developers"
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
# libbpf1: dlopened by a `deno compile` agent (the single file carries its own).
# Nothing else: the HEALTHCHECK uses bash.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
WORKDIR /home/huatuo-bamai
COPY --from=builder /dist/ /home/huatuo-bamai/
# Root: the agent needs CAP_SYS_ADMIN and friends anyway (see the DaemonSet),
# and the runtime grants those only to uid 0 (no ambient capabilities in
# Kubernetes). The manifests drop every other capability.
USER 0:0
EXPOSE 19704
# GET http://127.0.0.1:19704/healthz with bash's /dev/tcp (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/19704 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/home/huatuo-bamai/bin/huatuo-bamai"]
# No kubelet, no Elasticsearch by default; the manifests pass their own flags.
CMD ["--region", "example", "--config", "huatuo-bamai.conf", "--disable-kubelet", "--disable-storage"]
