"""``dropattack tasks``: the tasks, their defaults, aliases and parameter names.

The built-in tasks come first, then those installed packages register under the entry-point
group ``dropattack.tasks``; ``dropattack tasks package.module:factory --task-arg k=v`` shows
a task from the user's code.

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
    parser.add_argument(
        "names",
        nargs="*",
        metavar="TASK",
        help="tasks to show: names or package.module:factory (default: all)",
    )
    parser.add_argument(
        "--task-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument of the tasks' factories (package.module:factory tasks)",
    )
    parser.add_argument(
        "--resolve",
        nargs=2,
        metavar=("TASK", "ALIASES"),
        help="resolve comma-separated aliases or parameter names on TASK's model",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from models import external, tasks
    from models.aliases import split_list
    from sweeps.commands.train import parse_pairs

    task_args = parse_pairs(args.task_arg, "--task-arg") or None
    if args.resolve:
        task_name, items = args.resolve
        task = tasks.get(task_name, task_args)
        model = task.model_for_names()
        aliases = split_list(items)
        attacked = task.resolve(model, aliases)
        if args.json:
            print(json.dumps({"task": task.name, "aliases": aliases, "attacked": attacked}))
        else:
            print(f"{task.name}: {', '.join(aliases)} -> {', '.join(attacked)}")
        return 0
    installed = external.installed()
    described = []
    for name in args.names or [*tasks.names(), *installed]:
        try:
            own = name not in tasks.names()
            d = tasks.get(name, task_args if own else None).describe()
        except Exception as e:  # noqa: BLE001 - an installed task's code may raise anything
            if args.names:
                raise ValueError(f"task {name}: {e}") from None
            d = {"task": name, "error": f"{type(e).__name__}: {e}"}
        if name not in tasks.names():
            d.update(name=name, source=installed.get(name, name), **external.origin_or_empty(name))
        described.append(d)
    if args.json:
        print(json.dumps(described))
        return 0
    for d in described:
        _print(d)
    return 0


def _print(d: dict) -> None:
    if "error" in d:
        print(f"{d['task']}  (cannot load: {d['error']})\n")
        return
    text = f", max_len {d['max_len']}" if d.get("max_len") else ""
    what = f"{d['paper_model']} on {d['dataset']}; " if "paper_model" in d else ""
    name = d.get("name", d["task"])
    print(
        f"{name}  ({what}{', '.join(d['metrics'])}; {d['epochs']} epochs, batch "
        f"{d['batch_size']}, {d['optimizer']} lr {d['lr']:g}{text}; perturbs {d['perturbs']})"
    )
    if "source" in d:
        print(f"  from: {d['source']} ({d.get('task_version', 'version unknown')})")
    if d.get("paper"):
        print(f"  paper: {d['paper']}")
    if d.get("note"):
        print(f"  note: {d['note']}")
    for alias, names in d["aliases"].items():
        print(f"  {alias:<22} {', '.join(names)}")
    print(f"  default target: {d['input_alias']}; or a parameter name or glob among:")
    print(f"    {', '.join(d['parameters'])}")
    print()
