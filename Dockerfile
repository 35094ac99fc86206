# GPU image: TensorFlow with CUDA, the project, and the VGG19 weights fetched at build time so the
# container starts offline. One command runs the bot (docker-compose.yml): docker compose up -d.
# By hand: docker build -t nst-discord . &&
#   docker run --gpus all --env-file .env -v nst-data:/data nst-discord
# The TensorFlow the tests ran on: the base image is that release, and pip keeps it.
ARG TF_VERSION=2.21.0
FROM tensorflow/tensorflow:${TF_VERSION}-gpu
ARG TF_VERSION

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KERAS_HOME=/opt/keras NST_DATA_DIR=/data \
    NST_GPUS=0 NST_HTTP_PORT=8080
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nst_engine ./nst_engine
COPY bot ./bot
# With the ray extra, so GPU hosts can join a Ray cluster from this same image (docs/ray.md).
RUN pip install --no-cache-dir '.[ray]' "tensorflow==${TF_VERSION}" \
 && useradd --create-home --uid 10001 nst \
 && mkdir -p /opt/keras /data && chown nst /data
# Fetch and MD5-check the ImageNet weights into $KERAS_HOME/models, readable by the runtime user.
RUN nst weights download && chmod -R a+rX /opt/keras
# The job journal, saved styles and server settings (NST_DATA_DIR): kept outside the container.
VOLUME /data

USER nst
EXPOSE 8080
# /healthz on whatever port NST_HTTP_PORT names (0: the server is off, nothing to ask).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c "import os, sys, urllib.request; port = os.environ.get('NST_HTTP_PORT', '8080'); sys.exit(0 if port == '0' or urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["nst-bot"]
