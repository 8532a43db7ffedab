"""A gRPC server for the proxyless end-to-end test: one unary method,
/bowline.Echo/Who, on raw bytes (no generated code), answering the name it
was started with, so a test can tell which backend a call reached.

usage: server.py ADDRESS:PORT NAME
Prints "serving ADDRESS:PORT" once it listens; runs until killed.
"""

import sys
from concurrent import futures

import grpc


def main():
    address, name = sys.argv[1], sys.argv[2]
    answer = name.encode()

    def who(request, context):
        return answer

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
    if server.add_insecure_port(address) == 0:
        sys.exit(f"cannot listen on {address}")
    server.start()
    print(f"serving {address}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
