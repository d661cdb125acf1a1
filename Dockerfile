FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, in a layer of their own: a change to the source does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt

COPY README.md alembic.ini ./
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
COPY emulator ./emulator
COPY harness ./harness
RUN pip install --no-deps . \
 && mkdir -p /app/tbatch-out /var/lib/tbatch \
 && chown nobody /app/tbatch-out /var/lib/tbatch

USER nobody
# Healthy when the process answers on its metrics port (workers); a container without one
# (beat, migrate, the emulator) has nothing to probe and counts as healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import os, urllib.request; p = os.environ.get('TBATCH_METRICS_PORT'); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4)"
ENTRYPOINT ["tbatch"]
