# Dragon's container image: the API (`dragon serve`) and the worker (`dragon worker`) alike.
# Build: docker build -t dragon:0.1.0 .
# The base image is pinned to an exact release; bump it deliberately (docs/operations.md).
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m venv /opt/dragon \
    && /opt/dragon/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/dragon/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11.11-slim-bookworm
# A fixed, unprivileged user: no shell login, no home writes needed.
RUN groupadd --system --gid 10001 dragon \
    && useradd --system --uid 10001 --gid dragon --no-create-home --shell /usr/sbin/nologin dragon
COPY --from=build /opt/dragon /opt/dragon
ENV PATH=/opt/dragon/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRAGON_HOST=0.0.0.0 \
    DRAGON_PORT=8000 \
    DRAGON_PROFILE=prod \
    DRAGON_LOG_FORMAT=json
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
# Ready means: the store is reachable and migrated, and start-up finished (503 otherwise).
HEALTHCHECK --interval=15s --timeout=4s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3).status == 200 else 1)"]
CMD ["dragon", "serve"]
