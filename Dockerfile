# The tradegraph image used by docker-compose.yml (migrate, scheduler, worker) and for a one-off replay:
#   docker build -t tradegraph:local . && docker run --rm tradegraph:local run --no-progress
# TA-Lib comes with the ta-lib wheel (no system library); the bundled sample data is package data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install . && useradd --create-home --uid 10001 tradegraph

# the default SQLite journal and eval outputs land in the working directory
USER tradegraph
WORKDIR /home/tradegraph
ENTRYPOINT ["tradegraph"]
CMD ["run", "--no-progress"]
