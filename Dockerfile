# OPOS Tracker image: one image, three roles (web, worker, beat) chosen by command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH="/opt/venv/bin:$PATH" \
    OPOS_DATA_DIR=/var/lib/opos

# bubblewrap: the local backend's job sandbox (README, "Jobs and the service's secrets").
# slurm-client and munge: what a worker needs to submit to a site's Slurm (the site's
# slurm.conf and MUNGE key are mounted at run time, docs/deployment.md); its Slurm version
# must be one the site's controller accepts (Debian 12: 22.05; a controller accepts clients
# up to two major releases older). HTCondor needs no package: its Python bindings come
# with the project's dependencies. The compose file runs jobs as a batch account, not `opos`.
# The batch account's uid as the site's batch nodes know it (sbatch --uid sends the number).
ARG OPOS_BATCH_UID=
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        bubblewrap slurm-client munge \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir "uv==0.13.9" \
    && useradd --system --home /app --shell /usr/sbin/nologin opos \
    && useradd --system ${OPOS_BATCH_UID:+--uid "$OPOS_BATCH_UID"} --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin opos-batch

WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN uv sync --frozen --no-dev
# Settings make the data folder's private parts (broker, spools: 0700) when they load: hand
# what the build made to the service's account.
RUN mkdir -p /var/lib/opos \
    && OPOS_ENV=development SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chown -R opos /var/lib/opos

USER opos
EXPOSE 8000
CMD ["gunicorn", "opos.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
