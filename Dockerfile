# The project image: the Ray head and workers and the MLflow server of docker-compose.yml.
#
# BASE must carry the torch that pyproject.toml pins (torch==2.14.1, CUDA build): pip then
# finds it installed and keeps it, instead of fetching a second multi-GB copy. The build
# stops at the check below when they differ. Another CUDA, same torch:
#   docker compose build --build-arg BASE=pytorch/pytorch:2.14.1-cuda12.8-cudnn9-runtime
ARG BASE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${BASE}

ARG TORCH_VERSION=2.14.1
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -c "import sys, torch; v = torch.__version__.split('+')[0]; \
sys.exit(0 if v == '${TORCH_VERSION}' else \
f'BASE has torch {v}, pyproject.toml pins ${TORCH_VERSION}: pick a BASE tag with that torch')"

WORKDIR /app

# Dependencies first, so a code change reuses this layer; the constraint keeps the base's torch.
COPY pyproject.toml README.md ./
COPY docker/requirements.py docker/requirements.py
RUN python docker/requirements.py server > /tmp/requirements.txt \
    && echo "torch==${TORCH_VERSION}" > /tmp/constraints.txt \
    && pip install -r /tmp/requirements.txt -c /tmp/constraints.txt \
    && rm /tmp/requirements.txt

# The code, installed without touching the dependencies, and an unprivileged user to run it.
COPY . .
RUN pip install --no-deps . -c /tmp/constraints.txt \
    && python -c "import dropattack, models, sweeps.cli, psycopg2, boto3, ray.dashboard.optional_deps" \
    && useradd --create-home --uid 10001 --user-group --shell /bin/bash app \
    && mkdir -p /data/runs /home/app/.cache \
    && chown -R app:app /app /data /home/app/.cache

# Ray >= 2.52 (pyproject.toml): an older Ray ignores RAY_AUTH_MODE=token and leaves the job
# API, which runs anyone's code, open. The build stops here if the installed one is older.
ARG RAY_MIN=2.52
RUN python -c "import sys, ray; have = tuple(int(x) for x in ray.__version__.split('.')[:2]); \
need = tuple(int(x) for x in '${RAY_MIN}'.split('.')); sys.exit(0 if have >= need else \
f'ray {ray.__version__} has no token authentication: pyproject.toml needs ray>=${RAY_MIN}')"

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# MLflow 5000, Ray GCS 6379, Ray dashboard and job API 8265, Ray client 10001.
EXPOSE 5000 6379 8265 10001
CMD ["dropattack", "--help"]
