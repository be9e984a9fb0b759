# writ edge node: DNS resolver + HTTP proxy + block page/admin web, one process tree.
#
#   docker build -t writ:local .
#   docker run --rm -p 127.0.0.1:5300:5300/udp -p 127.0.0.1:8451:8451 \
#       -v "$PWD/court_orders:/orders:ro" writ:local
#
# Many nodes behind one Redis: see docker-compose.yml. Policy: /etc/writ/policy.yaml
# (policies/container.yaml; mount your own over it). Decision logs and the
# pseudonymisation/signing keys live in the state volume /var/lib/writ/state.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install writ from the source tree, then drop the sources: the image runs the
# installed package only.
COPY pyproject.toml README.md /src/
COPY writ /src/writ
RUN pip install /src && rm -rf /src

# An unprivileged user: every port writ listens on is above 1024 here.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/writ --create-home writ \
    && mkdir -p /var/lib/writ/state \
    && chown writ:writ /var/lib/writ/state

COPY policies/container.yaml /etc/writ/policy.yaml
# Sample orders, so that the image runs as it is; mount the real ones read-only
# over /orders.
COPY court_orders /orders

WORKDIR /var/lib/writ
VOLUME ["/var/lib/writ/state"]
USER 10001:10001

# DNS (UDP and TCP), HTTP proxy, block page + /healthz + /metrics + admin API.
EXPOSE 5300/udp 5300/tcp 8080/tcp 8451/tcp

# No curl in the slim image: ask /healthz with the Python standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8451/healthz', timeout=4).status == 200 else 1)"]

CMD ["writ", "serve", "--orders", "/orders", "--policy", "/etc/writ/policy.yaml"]
