"""The command tree: every group registers, and each command's owner is the module that adds it."""

from __future__ import annotations

import argparse

import pytest

from csms.cli.main import COMMAND_MODULES, COMMAND_OWNERS, build_parser, main


def test_every_command_has_its_registering_module_as_owner() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(COMMAND_OWNERS)
    assert set(COMMAND_OWNERS.values()) == set(COMMAND_MODULES)
    for command, module in COMMAND_OWNERS.items():
        only = build_parser(command)
        branch = next(a for a in only._actions if isinstance(a, argparse._SubParsersAction))
        assert command in branch.choices, (command, module)


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
