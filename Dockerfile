# filetier: HTTP API + MCP (streamable HTTP at /mcp) on one port.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FILETIER_HOME=/app/files \
    FILETIER_HTTP_HOST=0.0.0.0 \
    FILETIER_HTTP_PORT=8787

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && groupadd --system --gid 10001 filetier \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin filetier \
    && mkdir -p /app/files \
    && chown -R 10001:10001 /app/files

# Numeric, so the host (and compose's files-init) can match it: uid 10001 owns /app/files.
USER 10001:10001
VOLUME ["/app/files"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FILETIER_HTTP_PORT','8787'), timeout=4)"]
CMD ["filetier", "serve"]
