"""An S3-compatible server on 127.0.0.1 for the object-storage tests: moto in server mode, reached
through a TCP relay the test can cut (the store "stops" for the platform while moto keeps what it
holds, so the test can look at what a failed run left behind)."""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass


class Relay:
    """Forwards 127.0.0.1:<port> to a target. `cut()` closes the listener and every open connection,
    as a store that stops does; `cut_on` cuts the moment a request containing those bytes is sent,
    before it reaches the store; `restore()` listens on the same port again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.cut_on: bytes | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.open = True
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if not self.open:
                    client.close()
                    upstream.close()
                    return
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        with suppress(OSError):
            while data := source.recv(1 << 16):
                if outbound and self.cut_on is not None and self.cut_on in data:
                    self.cut()
                    return
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with self.lock:
            self.open = False
            self.cut_on = None
            self.listener.close()
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()


@dataclass
class ObjectStore:
    bucket: str
    relay: Relay
    environment: dict[str, str]
    direct_endpoint: str  # moto itself, bypassing the relay

    @property
    def endpoint(self) -> str:
        """Where the platform reaches the store: the relay."""
        return self.environment["AWS_ENDPOINT_URL"]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.direct_endpoint, **self._credentials())

    def _credentials(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.environment["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": self.environment["AWS_SECRET_ACCESS_KEY"],
            "region_name": self.environment["AWS_DEFAULT_REGION"],
        }

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object under `prefix`, read from the server directly (also after the relay is cut)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def start_object_store():
    """(store, stop): moto's S3 on a free port behind a relay; credentials generated for this run."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    relay = Relay((host, port))
    environment = {
        "AWS_ACCESS_KEY_ID": secrets.token_hex(10),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        "AWS_DEFAULT_REGION": "us-east-1",
        # botocore (boto3, s3fs through aiobotocore) reads the endpoint from here; MLflow its own.
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}",
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}",
    }
    store = ObjectStore(f"lake-{secrets.token_hex(4)}", relay, environment, f"http://{host}:{port}")
    store.client().create_bucket(Bucket=store.bucket)
    forget_clients()

    def stop() -> None:
        relay.cut()
        server.stop()
        forget_clients()

    return store, stop


def forget_clients() -> None:
    """fsspec keeps one S3 client per set of options, bound to the endpoint it was created for."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
