"""A small Kubernetes API on loopback for the backend's run loop, with a kubelet that really runs pods.

It serves the handful of endpoints the backend uses (pods, pod logs,
configmaps, network policies) for the official client over real HTTP. A pod
"runs" by executing its container command with the host's /usr/bin/python3
against the files of the ConfigMap it mounts, with the pod's env, so the
manifests the backend sends must actually work together. There is no
isolation here: tests feed it trusted snippets only. Deleting a running pod
kills its process, as the kubelet would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"pods": {}, "configmaps": {}, "networkpolicies": {}}
        self.processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.lock = threading.Lock()
        self.created: list[str] = []

    def start_pod(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        config_map = self.objects["configmaps"][pod["spec"]["volumes"][0]["configMap"]["name"]]
        root = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
        for item in pod["spec"]["volumes"][0]["configMap"]["items"]:
            target = root / "sandbox" / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config_map["data"][item["key"]])
        config_path = root / "sandbox" / "job" / "config.json"
        config = json.loads(config_path.read_text())
        config["workdir"] = str(root / "work")  # the kubelet mounts the emptyDir here
        config_path.write_text(json.dumps(config))
        argv = ["/usr/bin/python3", *container["command"][1:]]
        argv = [arg.replace("/sandbox", str(root / "sandbox")) for arg in argv]
        env = {item["name"]: item["value"] for item in container["env"]}
        log = open(root / "log", "wb")  # noqa: SIM115 - the child owns it until it exits
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.processes[name] = (process, root)
        pod["status"] = {"phase": "Running", "containerStatuses": [self._status("running", {"startedAt": _now()})]}

    def refresh(self, name: str) -> None:
        pod = self.objects["pods"].get(name)
        if pod is None or name not in self.processes:
            return
        process, _ = self.processes[name]
        code = process.poll()
        if code is not None and pod["status"]["phase"] == "Running":
            exit_code = code if code >= 0 else 128 - code
            terminated = {"exitCode": exit_code, "reason": "Completed" if code == 0 else "Error", "finishedAt": _now()}
            pod["status"] = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [self._status("terminated", terminated)],
            }

    def delete_pod(self, name: str) -> None:
        self.objects["pods"].pop(name, None)
        entry = self.processes.pop(name, None)
        if entry is not None:
            process, root = entry
            process.kill()
            process.wait()
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _status(state: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": "tool",
            "image": "python:3.11-slim",
            "imageID": "sha256:fake",
            "ready": state == "running",
            "restartCount": 0,
            "state": {state: detail},
        }

    def log_of(self, name: str) -> bytes:
        entry = self.processes.get(name)
        return (entry[1] / "log").read_bytes() if entry else b""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def serve(cluster: FakeCluster) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, str | None, str | None, dict[str, list[str]]]:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            # api/v1/namespaces/NS/KIND[/NAME[/log]] or apis/GROUP/VERSION/namespaces/NS/KIND
            index = parts.index("namespaces")
            rest = parts[index + 2 :]
            return rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None, parse_qs(url.query)

        def do_GET(self) -> None:
            kind, name, sub, query = self._route()
            with cluster.lock:
                if name is None:
                    items = list(cluster.objects[kind].values())
                    selector = query.get("labelSelector", [""])[0]
                    wanted = dict(pair.split("=") for pair in selector.split(",") if pair)
                    items = [i for i in items if wanted.items() <= (i["metadata"].get("labels") or {}).items()]
                    return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
                if kind == "pods":
                    cluster.refresh(name)
                found = cluster.objects[kind].get(name)
                if found is None:
                    return self._send(404, {"kind": "Status", "code": 404, "message": f"{name} not found"})
                if sub == "log":
                    limit = int(query.get("limitBytes", ["0"])[0]) or None
                    return self._send(200, cluster.log_of(name)[:limit], "text/plain")
                return self._send(200, found)

        def do_POST(self) -> None:
            kind, _, _, _ = self._route()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with cluster.lock:
                cluster.objects[kind][body["metadata"]["name"]] = body
                cluster.created.append(f"{kind}/{body['metadata']['name']}")
                if kind == "pods":
                    cluster.start_pod(body)
            self._send(201, body)

        def do_DELETE(self) -> None:
            kind, name, _, _ = self._route()
            assert name is not None
            with cluster.lock:
                if name not in cluster.objects[kind]:
                    return self._send(404, {"kind": "Status", "code": 404, "message": f"{name} not found"})
                if kind == "pods":
                    cluster.delete_pod(name)
                else:
                    cluster.objects[kind].pop(name)
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
