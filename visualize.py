#!/usr/bin/env python3
"""Look inside trained attnjax agents: saliency, videos, relevance trees, figures, evaluation.

Each subcommand lives in its own module of the package, which provides
`add_arguments(parser)` and `main(args) -> int`; this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from attnjax.cli import OneLineArgumentParser, run_cli
from attnjax.inspection.saliency.registry import SALIENCY_METHODS

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "saliency": ("attnjax.inspection.saliency.export",
                 f"export {'/'.join(m.display for m in SALIENCY_METHODS.values())} maps to .npz"),
    "video": ("attnjax.inspection.video", "render gameplay with the attention overlaid to MP4"),
    "tree": ("attnjax.inspection.relevance.viewer",
             "write an offline HTML viewer of deep relevance trees"),
    "figures": ("attnjax.figures", "paper figures and table from runs' metrics.jsonl"),
    "evaluate": ("attnjax.agents.evaluate", "play N full games per run: scores, table and JSON"),
    "assess": ("attnjax.metrics.assess",
               "finished runs at their final step: games, entropy, localization, collapse"),
    "publish": ("attnjax.agents.publish", "write a run's final parameters as a small agent folder"),
    "card": ("attnjax.agents.model_card", "write a run's README.md model card from its own files"),
    "metrics": ("attnjax.metrics.report", "measure localization, sanity, samples, faithfulness"),
}


def build_parser(selected: str | None) -> OneLineArgumentParser:
    """The parser; only the selected subcommand's module is imported (each pulls in JAX)."""
    parser = OneLineArgumentParser(prog="visualize.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name != selected:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=module.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_main=module.main)
    return parser


def run(argv: list[str]) -> int:
    """`visualize.py <argv>` in this process: parse, then the subcommand's `main(args)`. Bad
    flags exit with code 2; a UserError propagates (`run_cli` turns it into one line)."""
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected in ("saliency", "video", "metrics"):  # batch saliency: one frame per core, set
        # up here only (the subcommands' own code never repeats it)
        from attnjax.devices import use_cpu_cores_as_devices

        use_cpu_cores_as_devices()  # before JAX runs anything; see attnjax.devices
    args = build_parser(selected if selected in SUBCOMMANDS else None).parse_args(argv)
    return args._main(args)


def main() -> int:
    from attnjax.devices import restart_with_tcmalloc

    restart_with_tcmalloc()  # the command line's process only, before anything runs
    return run(sys.argv[1:])


if __name__ == "__main__":
    run_cli(main)
