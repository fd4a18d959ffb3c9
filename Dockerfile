# hpsearch on TensorFlow's GPU image (CUDA and cuDNN included; runs on CPU when no GPU is visible).
#   docker build -t hpsearch .            (or: docker compose build)
#   docker run --rm --gpus all hpsearch tasks
# Pick another TensorFlow release with --build-arg TF_VERSION=2.x.y (it needs Keras 3: TF >= 2.16).
ARG TF_VERSION=2.21.0
FROM tensorflow/tensorflow:${TF_VERSION}-gpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/hpsearch
# The image's TensorFlow satisfies the requirement; pip adds Keras 3, Optuna, the database drivers...
COPY . .
RUN pip install . && hpsearch tasks

# Not root: workers write only their Keras data cache (~/.keras) and the current folder.
RUN useradd --create-home --uid 1000 hpsearch
USER hpsearch
WORKDIR /home/hpsearch

ENTRYPOINT ["hpsearch"]
CMD ["--help"]
