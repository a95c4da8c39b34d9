"""A Bedrock runtime mock that checks every request's AWS Signature V4 with botocore (an
implementation independent of aihub's), then answers Converse, ConverseStream (binary AWS
event-stream frames with correct CRCs) and InvokeModel (Titan embeddings).

Usage: python bedrock_mock.py ACCESS_KEY_ID SECRET_ACCESS_KEY REGION
Prints the port it listens on, then serves until killed. GET /__checks returns the JSON
list of {"path", "signature": "ok" | "bad" | "missing", "detail"} for every request.
"""

import binascii
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS, SECRET, REGION = sys.argv[1], sys.argv[2], sys.argv[3]
CHECKS = []


def verify(method, path, headers, body):
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "missing", auth[:40]
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    signed = fields["SignedHeaders"].split(";")
    host = headers.get("host")
    req = AWSRequest(
        method=method,
        url="http://%s%s" % (host, path),
        data=body,
        headers={h: headers[h] for h in signed if h in headers},
    )
    req.context["timestamp"] = headers.get("x-amz-date", "")
    creds = Credentials(ACCESS, SECRET, headers.get("x-amz-security-token"))
    signer = SigV4Auth(creds, "bedrock", REGION)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    scope = fields["Credential"].split("/", 1)
    if scope[0] != ACCESS:
        return "bad", "credential %s" % fields["Credential"]
    if fields["Signature"] != expected:
        return "bad", "canonical request:\n" + canonical
    return "ok", ""


def frame(event_type, payload):
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += struct.pack("B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__checks":
            self.reply(200, "application/json", json.dumps(CHECKS).encode())
        else:
            self.reply(404, "application/json", b'{"message":"not found"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        result, detail = verify("POST", self.path, headers, body)
        CHECKS.append({"path": self.path, "signature": result, "detail": detail})
        if result != "ok":
            self.reply(403, "application/json",
                       json.dumps({"message": "The request signature we calculated does not match"}).encode())
            return
        if self.path.endswith("/converse"):
            self.reply(200, "application/json", json.dumps({
                "output": {"message": {"role": "assistant", "content": [{"text": "Hello from Bedrock"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16},
                "metrics": {"latencyMs": 10},
            }).encode())
        elif self.path.endswith("/converse-stream"):
            frames = b"".join([
                frame("messageStart", {"role": "assistant"}),
                frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
                frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " from Bedrock"}}),
                frame("contentBlockStop", {"contentBlockIndex": 0}),
                frame("messageStop", {"stopReason": "end_turn"}),
                frame("metadata", {"usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
                                   "metrics": {"latencyMs": 10}}),
            ])
            self.reply(200, "application/vnd.amazon.eventstream", frames)
        elif self.path.endswith("/invoke"):
            self.reply(200, "application/json",
                       json.dumps({"embedding": [0.25, -0.5, 1.0], "inputTextTokenCount": 3}).encode())
        else:
            self.reply(404, "application/json", b'{"message":"unknown operation"}')


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
