# syntax=docker/dockerfile:1
# The retirement image: Airflow 3.3.2 with everything baked in, so no container installs anything
# when it starts: the pinned requirements (requirements.txt), the Debian packages the pipeline
# runs with, the project (include/), its DAGs and its UI plugin. docker-compose.yaml builds it
# (`docker compose build`); deploy/helm/values.yaml names it for Kubernetes.

# USER 0 is root, USER 50000 the image's airflow user (numeric, as hadolint asks).

# Stage 1: a wheel for every pin, built with a compiler (mysqlclient has no wheel).
FROM apache/airflow:3.3.2-python3.11 AS wheels
USER 0
# The `build` list of scripts/system-deps.sh (a test keeps them equal).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
USER 50000
COPY requirements.txt /tmp/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /tmp/wheels -r /tmp/requirements.txt

# Stage 2: the image the stack runs.
FROM apache/airflow:3.3.2-python3.11
USER 0
# The `runtime` list of scripts/system-deps.sh (a test keeps them equal): Pango and a CJK font
# for the dossier's PDF, age and zstd to check a backup by hand, the OpenSSH client, MariaDB's
# client library, psql (PostgreSQL tables are exported and scanned through it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libpango-1.0-0 libpangoft2-1.0-0 fonts-wqy-microhei libmariadb3 age zstd openssh-client \
       postgresql-client \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY deploy/airflow/init.sh /opt/retirement/init.sh
USER 50000
COPY --chown=50000:0 requirements.txt pyproject.toml README.md /opt/retirement/src/
COPY --chown=50000:0 include /opt/retirement/src/include
RUN --mount=type=bind,from=wheels,source=/tmp/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links /tmp/wheels \
        -r /opt/retirement/src/requirements.txt \
    && pip install --no-cache-dir --no-deps /opt/retirement/src
COPY --chown=50000:0 dags /opt/airflow/dags
COPY --chown=50000:0 plugins /opt/airflow/plugins
