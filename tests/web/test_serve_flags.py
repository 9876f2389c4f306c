"""`fusetrain serve`'s dashboard address: checked like the gRPC one, before any worker starts."""

from __future__ import annotations

import socket

import pytest

from fusetrain.client.cli import build_parser
from fusetrain.client.serve import WEB_ADDRESS
from fusetrain.service.auth import AuthConfigError
from fusetrain.service.config import ServerConfig
from fusetrain.service.server import AddressUnavailable, Server


def test_a_taken_dashboard_address_stops_the_start_naming_the_option(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AddressUnavailable, match=f"127.0.0.1:{port}.*in use.*--web-address HOST:PORT"):
            Server(ServerConfig(address="127.0.0.1:0", data_dir=tmp_path, web_address=f"127.0.0.1:{port}"))


def test_a_public_dashboard_needs_tokens_as_grpc_does(tmp_path):
    with pytest.raises(AuthConfigError, match="--token"):
        Server(ServerConfig(address="127.0.0.1:0", data_dir=tmp_path, web_address="0.0.0.0:0"))


def test_the_command_lines_default_and_its_switches():
    parse = build_parser().parse_args
    assert WEB_ADDRESS == "127.0.0.1:8080"
    assert parse(["serve"]).web_address is None and not parse(["serve"]).no_web
    assert parse(["serve", "--web-address", "127.0.0.1:0"]).web_address == "127.0.0.1:0"
    assert parse(["serve", "--no-web"]).no_web
