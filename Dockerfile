# The Baton worker and starter image (docker-compose.yml builds it).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY baton ./baton
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py starter.py ./
# With the tracing extra: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set.
RUN pip install --no-cache-dir '.[tracing]'
# Temporal needs the process to exit on SIGTERM after in-flight tasks: worker.py does.
STOPSIGNAL SIGTERM
CMD ["python", "worker.py"]
