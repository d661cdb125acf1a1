FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini constraints.txt ./
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
COPY emulator ./emulator
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
ENTRYPOINT ["tbatch"]
