"""A generic gRPC client with no project code: it learns the registry's API from the server's
reflection service, then calls QueryService.SearchPersons with messages built from the learnt
descriptors. Prints one JSON object: the services listed, and the response.

Usage: python3 reflection_client.py HOST:PORT QUERY
Needs: pip install grpcio grpcio-reflection
"""

import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.json_format import MessageToDict
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    address, query = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("registry.v1.QueryService")
        method = service.methods_by_name["SearchPersons"]
        request_class = GetMessageClass(method.input_type)
        response_class = GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(request_class(query=query), timeout=10)
        print(json.dumps({"services": services, "response": MessageToDict(response)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
