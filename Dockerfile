# relay-gate as a container image, for deploy pipelines:
#
#   docker run --rm --network host relay-gate-local/gate relay-gate run --target-url https://staging.example.com
#
# Built by .ci/build-gate-image.sh, which prepares the build context: the gate's wheel and every
# dependency as a wheel (wheels/) plus constraints.txt, so the build installs from the wheel at the
# pinned versions with no network and no registry (--network none). BASE_IMAGE is a local image:
# .ci/build-images.sh builds relay-gate-local/python:3.11 (Debian bookworm's Python) with debootstrap.
ARG BASE_IMAGE=relay-gate-local/python:3.11
FROM ${BASE_IMAGE}

COPY constraints.txt /tmp/relay-gate/constraints.txt
COPY wheels/ /tmp/relay-gate/wheels/
RUN python3 -m venv /opt/relay-gate \
    && /opt/relay-gate/bin/python -m pip install --no-cache-dir --no-index --disable-pip-version-check \
        --find-links /tmp/relay-gate/wheels -c /tmp/relay-gate/constraints.txt relay-gate \
    && rm -rf /tmp/relay-gate \
    && useradd --system --create-home --home-dir /home/relay-gate --uid 10001 --user-group relay-gate

# results/ and evidence/out/ land in the working directory: mount a folder there to keep them
# (docker run -v "$PWD/gate:/home/relay-gate" ... , owned by uid 10001, or --user "$(id -u)")
ENV PATH=/opt/relay-gate/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER relay-gate
WORKDIR /home/relay-gate
CMD ["relay-gate", "--help"]
