# GPU image: TensorFlow with CUDA, the project, and the VGG19 weights fetched at build time so the
# container starts offline.  docker build -t nst-discord . && docker run --gpus all --env-file .env nst-discord
FROM tensorflow/tensorflow:2.20.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KERAS_HOME=/opt/keras NST_DATA_DIR=/data \
    NST_GPUS=0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nst_engine ./nst_engine
COPY bot ./bot
# With the ray extra, so GPU hosts can join a Ray cluster from this same image (see README).
RUN pip install --no-cache-dir '.[ray]' \
 && useradd --create-home --uid 10001 nst \
 && mkdir -p /opt/keras /data && chown nst /data
# Fetch and MD5-check the ImageNet weights into $KERAS_HOME/models, readable by the runtime user.
RUN nst weights download && chmod -R a+rX /opt/keras

USER nst
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
ENTRYPOINT ["nst-bot"]
