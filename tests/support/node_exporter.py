"""node_exporter's /metrics for the tests that start one (stats_openmetrics,
the package test): imported from their inline Python with PYTHONPATH set to
this directory."""
import time
import urllib.request


def scrape(port, tries=100):
    """The text of http://127.0.0.1:PORT/metrics, asked again every 0.1 s
    while the exporter is still starting; the test fails after `tries`."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from node_exporter on 127.0.0.1:{port}")
