#!/usr/bin/env bash
# Regenerate plugins/zoo_caffe/caffe_pb2.py from caffe.proto with the protoc that grpcio-tools bundles.
# The generated module needs a protobuf runtime at least as new as that protoc: keep the `caffe` extra's
# protobuf pin in pyproject.toml in step.   Usage: pip install grpcio-tools && scripts/generate_caffe_pb2.sh
set -euo pipefail
cd "$(dirname "$0")/../plugins/zoo_caffe"
python -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. caffe.proto
