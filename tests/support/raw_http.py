"""HTTP/1.1 over a bare socket, for requests that real clients send slowly or only in part."""

import json
import socket


class PartialRequest:
    """A request whose head (and half its body) is sent now and the rest later: in flight meanwhile."""

    def __init__(self, url: str, method: str, path: str, body: bytes = b"", timeout_s: float = 30):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.rest = body[len(body) // 2 :] if body else b"\r\n"
        self.sock.sendall(head.encode() + (b"\r\n" + body[: len(body) // 2] if body else b""))

    def finish(self) -> tuple[int, dict]:
        """Send the rest, then read the answer: (status, JSON body)."""
        self.sock.sendall(self.rest)
        return self.answer()

    def answer(self) -> tuple[int, dict]:
        """Read the answer to what was sent so far, until the server closes the connection."""
        received = b""
        while chunk := self.sock.recv(65536):
            received += chunk
        self.sock.close()
        head, _, body = received.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)
