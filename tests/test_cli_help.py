"""`labelwise --help` and every `labelwise COMMAND --help` read as help: every option explained
with its default, no reST markup, and the top-level list names exactly the commands that exist."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import re

import pytest

import labelwise.commands
from labelwise.commands.cli import STAGES, HelpFormatter, build_parser, main, plain

MARKUP = re.compile(r"``|:(?:class|func|meth|mod|data|attr|obj|exc|ref|doc):`|::\s*$|`[^`\s][^`]*`_", re.M)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def help_problems(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """What is wrong with one command's help: markup, options without help, defaults not stated."""
    problems = []
    text = parser.format_help()
    for m in MARKUP.finditer(text):
        problems.append(f"{name}: markup {m.group(0)!r} in --help")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = action.option_strings[0] if action.option_strings else action.dest
        if not (action.help or "").strip():
            problems.append(f"{name} {flag}: no help")
            continue
        shown = parser._get_formatter()._expand_help(action) if action.help else ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                and not isinstance(action.default, bool) and "default" not in shown:
            problems.append(f"{name} {flag}: default {action.default!r} not stated")
        if "\n" in action.help.strip():
            problems.append(f"{name} {flag}: help is more than one line")
    return problems


def test_every_command_help_is_plain_and_complete():
    problems = []
    for name, parser in _subparsers(build_parser()).items():
        problems += help_problems(name, parser)
    assert not problems, "\n".join(problems)


def test_the_checker_finds_what_it_looks_for():
    # A parser with every fault the check above must catch, built with the CLI's formatter.
    bad = argparse.ArgumentParser(prog="x", description="run ``x``::\n\n    x --go\n",
                                  formatter_class=HelpFormatter)
    bad.add_argument("--n", type=int, default=3)                       # no help
    bad.add_argument("--k", type=int, default=5, help="neighbours")
    bad.add_argument("--m", help="see :class:`labelwise.LabelSchema`")
    found = "\n".join(help_problems("x", bad))
    assert "markup '``'" in found
    assert "markup ':class:`'" in found
    assert "x --n: no help" in found
    # --k's default is appended by the formatter, so it is stated
    assert "--k" not in found


def test_plain_removes_rest_markup():
    assert plain("``labelwise train CONFIG.toml``: see :class:`labelwise.training.TrainConfig`") == \
        "labelwise train CONFIG.toml: see labelwise.training.TrainConfig"
    assert plain("with the run's schema::\n\n    labelwise shard x") == "with the run's schema:\n\n    labelwise shard x"
    assert plain(":func:`~labelwise.decide.decide` and a C++ call f(a::b)") == "labelwise.decide.decide and a C++ call f(a::b)"


def test_top_level_help_lists_exactly_the_commands_that_exist(capsys):
    registered = set(_subparsers(build_parser()))
    # every module of labelwise.commands that defines a command is registered
    modules = set()
    for info in pkgutil.iter_modules(labelwise.commands.__path__):
        module = importlib.import_module(f"labelwise.commands.{info.name}")
        if hasattr(module, "add_parser"):
            modules.add(info.name)
    assert modules == registered
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    listed = re.findall(r"^  ([a-z][a-z0-9-]*) {2,}\S", text, re.M)
    assert sorted(listed) == sorted(registered)
    assert len(listed) == len(set(listed))
    # grouped by stage, in pipeline order
    assert listed == [n for _, names in STAGES for n in names if n in registered]
    for stage, _ in STAGES:
        assert f"\n{stage}:\n" in text
    assert not MARKUP.search(text)


@pytest.mark.parametrize("name", sorted(_subparsers(build_parser())))
def test_each_listed_command_answers_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: labelwise {name}")


def test_train_flags_state_the_config_defaults():
    from labelwise.commands.train import flag_help
    from labelwise.training.config import TrainConfig

    missing = [f.name for f in dataclasses.fields(TrainConfig)
               if f.default not in (None, dataclasses.MISSING) and "default" not in flag_help(f)]
    assert not missing
    epochs = next(f for f in dataclasses.fields(TrainConfig) if f.name == "epochs")
    assert flag_help(epochs).endswith(f"(default {TrainConfig().epochs})")


def test_demo_help_describes_what_the_demo_runs():
    text = _subparsers(build_parser())["demo"].format_help()
    from labelwise.training.demo import DEMO_SCHEMA

    for label in ("greater_than_5", "even"):
        assert label in DEMO_SCHEMA.labels and label in text
    assert "derived" in text and "instance-f1" in text and "calibrated" in text
    assert "report.html" in text and "model.keras" in text


def test_the_docs_cli_reference_is_generated_from_these_parsers():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = hooks.on_page_markdown("# CLI\n\n<!-- cli-reference -->\n", None, None, None)
    assert "<!-- cli-reference -->" not in page
    sections = re.findall(r"^## labelwise ([a-z-]+)$", page, re.M)
    assert sorted(sections) == sorted(_subparsers(build_parser()))
    assert "--decide-for" in page and "--max-upload-mb" in page
