"""`genrec <verb>` (also `python -m genrec <verb>`): one dict from verb to a typed function.

Every verb has `--help`. Options that mirror a config dataclass are generated
from its fields, so a YAML file (`--config`) and `--key value` flags use the
same names. Errors in the user's input print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing

# waiting OpenMP threads sleep instead of spinning: with another busy process on the machine,
# spinning threads fight it at every barrier (must be set before torch starts OpenMP)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from genrec.cli import data, model, serve  # noqa: E402,F401  (each module registers its verbs)
from genrec.cli.base import VERBS  # noqa: E402
from genrec.runtime import quiet_libraries  # noqa: E402


# ---------------------------------------------------------------- entry point
RECIPE_VERBS = {"info", "train"}  # verbs that take --section.key value overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrec", description="Multimodal generative recommendation "
                                     "with adapter-tuned language models.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (_, add_args, help) in VERBS.items():
        extra = {"epilog": recipe_keys_help(), "formatter_class": argparse.RawDescriptionHelpFormatter} \
            if name in RECIPE_VERBS else {}
        add_args(sub.add_parser(name, help=help, description=help, **extra))
    return parser


def recipe_keys_help(width: int = 100) -> str:
    """Every recipe key with its default and help text, for `genrec train --help`."""
    import textwrap

    from genrec.config import SECTIONS, Recipe
    lines = ["recipe keys (override any of them as --section.key value, e.g. --train.steps 50):"]
    for sec in SECTIONS:
        cls = typing.get_type_hints(Recipe)[sec]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            md = f.metadata
            text = md.get("help", "")
            if md.get("choices"):
                text += f" ({' | '.join(md['choices'])})"
            lines.append(f"  {sec}.{f.name} = {default!r}")
            lines += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()  # keep the CLI's own output readable; errors still show
    quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if argv and argv[0] in RECIPE_VERBS:  # pull out --section.key value pairs before argparse
        keep, i = [], 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--") and "." in a.split("=", 1)[0]:
                overrides.append(a)
                if "=" not in a and i + 1 < len(argv):
                    overrides.append(argv[i + 1])
                    i += 1
            else:
                keep.append(a)
            i += 1
        argv = keep
    ns = parser.parse_args(argv)
    ns.overrides = overrides
    if not ns.verb:
        parser.print_help()
        return 2
    try:
        return VERBS[ns.verb][0](ns)
    except KeyboardInterrupt:
        print("genrec: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        if os.environ.get("GENREC_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"genrec {ns.verb}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
