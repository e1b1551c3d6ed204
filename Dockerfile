# The cosmobac container image: what the Bacalhau fleet jobs run on every edge node
# (docs/bacalhau.md). Build it from the repository root:
#
#   docker build -t registry.example.com/cosmobac:0.1.0 .
#
# ENTRYPOINT is the cosmobac command line, so the job's (or `docker run`'s) arguments are a
# cosmobac command: `docker run IMAGE forward /etc/cosmobac/pipeline.toml`. Configuration comes
# from a pipeline file (shipped in the Bacalhau job or mounted) and from the environment, which
# fills the file's ${VAR} references. No secret is baked in: pass them when the container runs
# (a Bacalhau task Env `COSMOS_KEY: env:COSMOS_KEY`, or `docker run -e COSMOS_KEY`).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY plugins/cosmobac-sqlite ./plugins/cosmobac-sqlite
COPY plugins/cosmobac-cosmos ./plugins/cosmobac-cosmos
COPY plugins/cosmobac-wasm ./plugins/cosmobac-wasm
COPY plugins/cosmobac-mqtt ./plugins/cosmobac-mqtt
COPY plugins/cosmobac-modbus ./plugins/cosmobac-modbus
# wheels of cosmobac, its shipped plugins and every dependency, for an offline install below
# (with the monitoring extra: /metrics, /healthz and /readyz for [monitoring] listen)
RUN pip wheel --no-cache-dir --wheel-dir /wheels \
        ".[monitoring]" ./plugins/cosmobac-sqlite ./plugins/cosmobac-cosmos ./plugins/cosmobac-wasm \
        ./plugins/cosmobac-mqtt ./plugins/cosmobac-modbus

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="cosmobac" \
      org.opencontainers.image.description="Edge-to-cloud sensor pipelines: cosmobac with its SQLite, Cosmos DB, WebAssembly, MQTT and Modbus plugins" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COSMOBAC_DATA=/data \
    COSMOBAC_WASM_CACHE=/tmp/cosmobac-wasm
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && useradd --system --uid 10001 --create-home --home-dir /home/cosmobac cosmobac \
    && mkdir -p /data /etc/cosmobac \
    && chown cosmobac:cosmobac /data
# the node's data folder (store, live pipeline file) is mounted here; it must be writable by
# uid 10001 on the node: install -d -o 10001 -g 10001 /var/lib/cosmobac
WORKDIR /data
USER 10001
ENTRYPOINT ["cosmobac"]
CMD ["--help"]
