# attnjax on an NVIDIA GPU: JAX 0.10.2 with its CUDA 12 plugin, the project's locked
# dependencies, and train.py as the entry point.
#
#   docker build -t attnjax .
#   docker run --gpus all -v "$PWD/runs:/app/runs" attnjax --env-id Breakout-v5 --attn-coef 0.002
#
# The CUDA libraries come as pip wheels (nvidia-*-cu12, via jax-cuda12-plugin[with-cuda]), so a
# plain Python base works; the host needs only the NVIDIA driver and the NVIDIA Container Toolkit.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLBACKEND=Agg

WORKDIR /app

# 1. every dependency exactly as locked (hash-checked); 2. the CUDA build of the pinned jaxlib
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir "jax-cuda12-plugin[with-cuda]==0.10.2" "jax-cuda12-pjrt==0.10.2"

# an unprivileged user that owns the run folder (mount a host folder on /app/runs to keep runs)
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin attnjax \
    && mkdir -p /app/runs \
    && chown attnjax:attnjax /app /app/runs

# train.py sits next to the attnjax package, so `python train.py` imports it from /app
COPY --chown=attnjax:attnjax . .

USER 1000:1000

ENTRYPOINT ["python", "train.py"]
