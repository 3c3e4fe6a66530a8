# docker build --network host -t huatuo/huatuo-bamai:latest .
# docker run --privileged --cgroupns=host --network=host -v /sys:/sys -v /proc:/proc -v /run:/run huatuo/huatuo-bamai:latest
#
# The builder stage runs ./build.sh, which installs Deno from the npm registry
# and the Debian toolchain; the image carries _output/ and the shipped config
# in /home/huatuo-bamai, as the seed documents.
FROM debian:bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./build.sh

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 iproute2 && rm -rf /var/lib/apt/lists/*
WORKDIR /home/huatuo-bamai
COPY --from=builder /src/_output/ /home/huatuo-bamai/
COPY huatuo-bamai.conf /home/huatuo-bamai/huatuo-bamai.conf
EXPOSE 19704
ENTRYPOINT ["/home/huatuo-bamai/bin/huatuo-bamai"]
# The image's default, like the seed's: no kubelet, no Elasticsearch.
CMD ["--region", "example", "--config", "huatuo-bamai.conf", "--disable-kubelet", "--disable-storage"]
