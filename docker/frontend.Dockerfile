# syntax=docker/dockerfile:1
# The Myriad front end: the Ray head node and the `myriad collect --ray auto` driver (same workspace as a back
# end: the driver ships the actor class by reference, and the description is validated here).
# Build from the workspace root: docker build -f docker/frontend.Dockerfile -t myriad-frontend .
ARG BASE_IMAGE=ros:kilted-ros-base
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive PYTHON=python3.11 MYRIAD_WS=/ws
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev cmake g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY requirements.txt ./
RUN python3.11 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY . .
RUN bash scripts/setup.sh && rm -rf log/*

# 6379: Ray GCS (back-end nodes join here); 8265: Ray dashboard.
EXPOSE 6379 8265
ENTRYPOINT ["bash", "/ws/docker/entrypoint.sh"]
CMD ["bash", "/ws/docker/frontend.sh"]
