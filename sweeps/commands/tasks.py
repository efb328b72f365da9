"""``dropattack tasks``: the tasks, their paper defaults, aliases and parameter names.

``dropattack tasks --resolve TASK A,B --json`` prints one JSON object whose ``attacked`` lists
the parameter names the aliases resolve to on the task's model (an unknown alias is an error
that lists the valid ones).
"""

from __future__ import annotations

import argparse
import json

NAME = "tasks"
HELP = "List the tasks with their paper aliases and parameter names, or resolve aliases."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="TASK", help="tasks to show (default: all)")
    parser.add_argument(
        "--resolve",
        nargs=2,
        metavar=("TASK", "ALIASES"),
        help="resolve comma-separated aliases or parameter names on TASK's model",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from models import tasks
    from models.aliases import resolve, split_list

    if args.resolve:
        task_name, items = args.resolve
        task = tasks.get(task_name)
        with torch.device("meta"):
            model = task.build_model()
        aliases = split_list(items)
        attacked = resolve(model, aliases)
        if args.json:
            print(json.dumps({"task": task.name, "aliases": aliases, "attacked": attacked}))
        else:
            print(f"{task.name}: {', '.join(aliases)} -> {', '.join(attacked)}")
        return 0
    chosen = [tasks.get(n) for n in (args.names or tasks.names())]
    described = [t.describe() for t in chosen]
    if args.json:
        print(json.dumps(described))
        return 0
    for d in described:
        text = f", max_len {d['max_len']}" if d["max_len"] else ""
        print(
            f"{d['task']}  ({d['paper_model']} on {d['dataset']}; {', '.join(d['metrics'])}; "
            f"{d['epochs']} epochs, batch {d['batch_size']}, {d['optimizer']} lr {d['lr']:g}{text})"
        )
        print(f"  paper: {d['paper']}")
        if d["note"]:
            print(f"  note: {d['note']}")
        for alias, names in d["aliases"].items():
            print(f"  {alias:<22} {', '.join(names)}")
        print()
    return 0
