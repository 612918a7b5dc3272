# ndiv serve in a container: the model folder (written by Forecaster.save) is mounted at /model.
#   docker build -t ndiv-serve .
#   docker run -p 8000:8000 -v "$PWD/my_model:/model:ro" ndiv-serve
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ndiv ./ndiv
RUN pip install ".[serve]" && rm -rf /src

RUN useradd --create-home --uid 10001 ndiv
USER ndiv
WORKDIR /home/ndiv

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"

# SIGTERM (docker stop) finishes the requests in flight and exits with status 0
CMD ["ndiv", "serve", "/model", "--host", "0.0.0.0", "--port", "8000"]
