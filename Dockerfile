# syntax=docker/dockerfile:1
# One image for the twin service (default command) and the bridge (compose overrides the
# command). Build: docker build -t ev-battery-twin .   Run: docker run -p 8008:8008 ev-battery-twin
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the project and its dependencies ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so code changes do not reinstall them (all ship binary wheels).
COPY pyproject.toml README.md ./
RUN mkdir twin_service bridge clients \
    && pip install --no-cache-dir . \
    && pip uninstall -y ev-battery-twin
COPY twin_service ./twin_service
COPY bridge ./bridge
COPY clients ./clients
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q /opt/venv/lib

# --- final: the virtual environment on a clean slim base, as a non-root user -----------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TWIN_CONFIG=/app/config.yaml \
    TWIN_HOST=0.0.0.0 \
    TWIN_PORT=8008 \
    NUMBA_CACHE_DIR=/app/numba-cache
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin twin \
    && mkdir -p /app/numba-cache /data \
    && chown twin:twin /app/numba-cache /data
COPY --from=build /opt/venv /opt/venv
COPY config.yaml deploy/healthcheck.py /app/
WORKDIR /app
USER 10001:10001
# Compile the numba step kernel now, so containers start without compiling; numba writes to
# this cache again only on a CPU it has not seen.
RUN python -c "from twin_service.models.pack import warm_up; warm_up()"
EXPOSE 8008
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py", "/health"]
CMD ["python", "-m", "twin_service"]
