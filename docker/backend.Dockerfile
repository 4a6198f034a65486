# syntax=docker/dockerfile:1
# A Myriad back-end host: a Ray worker node whose actors run back ends (sim, planner, sampler, logger).
# Build from the workspace root: docker build -f docker/backend.Dockerfile -t myriad-backend .
# The ROS 2 Kilted base gives the OS (Ubuntu 24.04); Myriad's ROS 2 comes from PyPI wheels for Python 3.11
# (scripts/setup.sh), so /opt/ros is not sourced (its Python is 3.12).
ARG BASE_IMAGE=ros:kilted-ros-base
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive PYTHON=python3.11 MYRIAD_WS=/ws LP_NUM_THREADS=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev cmake g++ \
      libegl1 libgl1 libgl1-mesa-dri \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
# Requirements first: the wheel layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN python3.11 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY . .
# Same setup as a developer's machine: venv (already filled), CMake path fix-up, colcon build, `myriad`.
RUN bash scripts/setup.sh && rm -rf log/*

ENTRYPOINT ["bash", "/ws/docker/entrypoint.sh"]
# Join the Ray cluster whose head is the front end; actors placed here start their back ends here.
CMD ["bash", "-c", "ray start --address=${RAY_HEAD:-frontend}:6379 --num-cpus=${MYRIAD_BACKEND_CPUS:-1} --disable-usage-stats --block"]
