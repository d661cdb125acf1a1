FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
COPY emulator ./emulator
COPY harness ./harness
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["tbatch"]
