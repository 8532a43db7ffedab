"""A proxyless gRPC client for the end-to-end test: gRPC's own xDS client
(bootstrap in $GRPC_XDS_BOOTSTRAP) resolves an xds:/// target through the
control plane, and calls /bowline.Echo/Who on it.

usage: client.py TARGET
Reads commands from stdin, one a line: "N [HEADER=VALUE]... [timeout=S]"
makes N calls, with those request headers, and prints one JSON line: the
answers counted by backend name, failures under "error:<status code>".
Each call waits for the channel to be ready, up to a deadline (20 s, or
S) that only guards against a hang. Exits at end of input.

The channel has xDS credentials with a plaintext fallback, as a proxyless
application under a mesh dials: a cluster whose config asks for mutual
TLS gets it from the bootstrap's certificate provider (gRFC A29), the
others stay plaintext.
"""

import json
import sys

import grpc
import grpc.experimental

DEADLINE_SECONDS = 20


def main():
    target = sys.argv[1]
    credentials = grpc.xds_channel_credentials(
        grpc.experimental.insecure_channel_credentials()
    )
    channel = grpc.secure_channel(target, credentials)
    who = channel.unary_unary("/bowline.Echo/Who")
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        count = int(words[0])
        metadata = []
        deadline = DEADLINE_SECONDS
        for pair in words[1:]:
            key, _, value = pair.partition("=")
            if key == "timeout":
                deadline = float(value)
            else:
                metadata.append((key, value))
        answers = {}
        for _ in range(count):
            try:
                name = who(
                    b"",
                    timeout=deadline,
                    metadata=metadata,
                    wait_for_ready=True,
                ).decode()
            except grpc.RpcError as e:
                name = f"error:{e.code().name}: {e.details()}"
            answers[name] = answers.get(name, 0) + 1
        print(json.dumps(answers, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
