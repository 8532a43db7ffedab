"""A gRPC server for the proxyless end-to-end test: one unary method,
/bowline.Echo/Who, on raw bytes (no generated code), answering the name it
was started with, so a test can tell which backend a call reached.

usage: server.py ADDRESS:PORT NAME [CERT_CHAIN KEY ROOTS]
With the three files, it serves mutual TLS only (a client certificate
signed by ROOTS required) and answers "NAME PEER", PEER being the SPIFFE
id in the caller's certificate. Prints "serving ADDRESS:PORT" once it
listens; runs until killed.
"""

import sys
from concurrent import futures

import grpc


def main():
    address, name = sys.argv[1], sys.argv[2]
    files = sys.argv[3:6]
    answer = name.encode()

    def who(request, context):
        if not files:
            return answer
        peer = [
            value
            for values in context.auth_context().values()
            for value in values
            if value.startswith(b"spiffe://")
        ]
        return answer + b" " + (peer[0] if peer else b"no-spiffe-id")

    handler = grpc.method_handlers_generic_handler(
        "bowline.Echo",
        {
            "Who": grpc.unary_unary_rpc_method_handler(
                who,
                request_deserializer=None,
                response_serializer=None,
            )
        },
    )
    # Without SO_REUSEPORT, so a stray server on the address is an error
    # rather than a second backend answering in its place.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers((handler,))
    if files:
        chain, key, roots = (open(path, "rb").read() for path in files)
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=roots, require_client_auth=True
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        sys.exit(f"cannot listen on {address}")
    server.start()
    print(f"serving {address}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
