#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) from the plugins' test fixtures.

Run from the repository root: python3 fuzz/corpus/seed.py. The layout of an input is
described in fuzz/src/lib.rs: flags byte, cut count, little-endian u16 cuts, body.
"""
import glob
import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def fixture(plugin, name):
    with open(os.path.join(ROOT, "plugins", plugin, "tests", "fixtures", name), "rb") as f:
        return f.read()


def fixtures(plugin, pattern):
    paths = sorted(glob.glob(os.path.join(ROOT, "plugins", plugin, "tests", "fixtures", pattern)))
    return [open(p, "rb").read() for p in paths]


def cut(flags, body, cuts=()):
    return bytes([flags, len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts) + body


def write(target, inputs):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for data in inputs:
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def stream_seeds(bodies):
    out = []
    for b in bodies:
        n = len(b)
        out.append(cut(0, b))
        out.append(cut(1, b, (n // 3, n // 2, n - 1)))
    return out


SSE = b"event: message_start\ndata: {\"a\":1}\n\n: comment\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]"
openai_sse = fixtures("openai", "*.sse")
anthropic_sse = fixtures("anthropic", "*.sse")
gemini_sse = fixtures("gemini", "*.sse")

write("sse_parser", [cut(f, SSE, (7, 30)) for f in range(4)]
      + [cut(1, b"data: " + b"x" * 200, (50,))]
      + stream_seeds(openai_sse[:1] + anthropic_sse[:1] + gemini_sse[:1]))
write("openai_stream", stream_seeds(openai_sse))
write("anthropic_stream", stream_seeds(anthropic_sse))
write("gemini_stream", stream_seeds(gemini_sse))
write("echo_stream", stream_seeds([b'{"text":"hello big world","prompt_tokens":5}', b"{}"]))

CHAT = b'{"model":"x","messages":[{"role":"user","content":"hi"}]}'
CHAT_STREAM = b'{"model":"x","messages":[],"stream":true,"stream_options":{"include_usage":true}}'
IMAGE_CHAT = (b'{"model":"x","max_tokens":64,"temperature":0.5,"messages":[{"role":"user","content":'
              b'[{"type":"text","text":"what is this"},{"type":"image_url","image_url":'
              b'{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}')
EMBED = b'{"model":"x","input":["one","two"]}'
IMAGES = b'{"model":"x","prompt":"a cat","n":1,"size":"256x256"}'
STATUS = {200: 0, 400: 1, 401: 2, 403: 3, 404: 4, 429: 5, 500: 6, 529: 7}


def request_seeds(plugin, requests, replies):
    out = [bytes([0]) + CHAT, bytes([4 | 8]) + CHAT_STREAM, bytes([0]) + IMAGE_CHAT,
           bytes([1]) + EMBED, bytes([2]) + IMAGES]
    out += [bytes([0]) + r for r in requests]
    for name, status in replies:
        out.append(bytes([STATUS.get(status, 6) << 4]) + fixture(plugin, name))
    return out


def errors(plugin):
    names = sorted(os.path.basename(p) for p in glob.glob(
        os.path.join(ROOT, "plugins", plugin, "tests", "fixtures", "error_*.json")))
    return [(n, int(n[6:9])) for n in names]


write("openai_request", request_seeds("openai", [],
      [("chat_completion.json", 200), ("embeddings.json", 200)] + errors("openai")))
write("anthropic_request", request_seeds("anthropic", fixtures("anthropic", "request_*.json"),
      [("message_text.json", 200), ("message_tool_use.json", 200), ("message_thinking.json", 200)]
      + errors("anthropic")))
write("gemini_request", request_seeds("gemini", [],
      [("generate_text.json", 200), ("generate_function_calls.json", 200),
       ("embed_batch.json", 200)] + errors("gemini")))
write("echo_request", [bytes([0]) + CHAT, bytes([4]) + CHAT_STREAM, bytes([1]) + EMBED,
                       bytes([0]) + b'{"text":"hi","prompt_tokens":1}'])

write("request_head", [CHAT, CHAT_STREAM, EMBED, IMAGES, b'{"model":""}', b'{"stream":"yes"}'])
write("admin_query", [b"limit=10&app=3&since=1700000000&until=1700000000000&cursor=5",
                      b"format=csv&status=ok&provider=openai&model=gpt-4o",
                      b"group_by=day&app=1&since=-5", b"limit=%31%30&group_by=hour",
                      # Once a panic: `abs` of i64::MIN in time_param.
                      b"since=-9223372036854775808"])
