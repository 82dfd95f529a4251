# The Baton worker and starter image (docker-compose.yml builds it).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY baton ./baton
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py starter.py ./
# With the tracing extra: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set. Bytecode
# is compiled now: the code stays root's and read-only to the user below.
RUN pip install --no-cache-dir '.[tracing]' \
    && python -m compileall -q baton workflows activities
# Not root: the worker runs tools and holds provider keys, so a flaw in either gets an
# unprivileged user that cannot change the code it runs. A numeric id lets Kubernetes'
# runAsNonRoot check it.
RUN useradd --system --uid 10001 --user-group --create-home --shell /usr/sbin/nologin baton
USER 10001:10001
# Temporal needs the process to exit on SIGTERM after in-flight tasks: worker.py does.
STOPSIGNAL SIGTERM
CMD ["python", "worker.py"]
