"""Render the MNIST results page from the JSON that the training and evaluation tools wrote.

    python -m tools.render_results            # writes book/mnist_results.md and book/mnist_learning_curve.png
    python -m tools.render_results --check    # exit 1 if book/mnist_results.md is out of date

Inputs (committed data, in book/results/):

- ``metrics.json``: the per-epoch metrics written by ``python -m vi_lib.mnist.train`` (copied from
  ``runs/<name>.metrics.json``), with the command, settings and machine;
- ``evaluation.json``: the output of ``python -m vi_lib.mnist.evaluate --num-samples 1000`` on all test images;
- ``benchmark.json``: the speed and memory figures of ``benchmarks/mnist_benchmark.py --save``;
- ``notes.json`` (written by hand): the book's target (also read by the benchmark) and what the
  other files cannot say about the run's conditions.

The page's text is the template ``tools/templates/mnist_results.md.j2``; :func:`render_markdown`
fills it with these files and a few numbers derived from them. Every number on the page comes from
these files; nothing is typed in by hand except the published numbers of other papers, which are
listed in :data:`PUBLISHED` with their protocols.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "results"
PAGE = ROOT / "book" / "mnist_results.md"
FIGURE = ROOT / "book" / "mnist_learning_curve.png"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "mnist_results.md.j2"

#: Published test NLLs on dynamically binarised MNIST, with what each number means.
PUBLISHED = [
    {
        "model": "VAE, 1 stochastic layer (50 units), MLP",
        "nll": "86.76",
        "k": "5,000",
        "training": "3,280 passes over the data",
        "source": "{cite:t}`burda2015importance`, Table 1",
    },
    {
        "model": "IWAE (k = 50), 2 stochastic layers, MLP",
        "nll": "82.90",
        "k": "5,000",
        "training": "3,280 passes over the data",
        "source": "{cite:t}`burda2015importance`, Table 1",
    },
    {
        "model": "ResNet convolutional VAE, diagonal Gaussian posterior",
        "nll": "about 81",
        "k": "see the paper",
        "training": "deep ResNet, long GPU training",
        "source": "{cite:t}`kingma2016improved`",
    },
]


def load(results: Path = RESULTS) -> dict:
    """The JSON files of ``results`` by name (``metrics``, ``evaluation``, ...); None for a missing one."""
    data = {}
    for name in ("metrics", "evaluation", "benchmark", "notes"):
        path = results / f"{name}.json"
        data[name] = json.loads(path.read_text()) if path.exists() else None
    return data


def _fmt(x: float, digits: int = 2) -> str:
    """``x`` with thousands separators and a typographic minus: ``_fmt(-1234.5)`` is ``−1,234.50``."""
    return f"{x:,.{digits}f}".replace("-", "−")


#: Command-line modules that were renamed after a run recorded its command: old prefix -> today's.
RENAMED_COMMANDS = {"python -m vi_lib.train ": "python -m vi_lib.mnist.train "}


def _current_command(recorded: str) -> tuple[str, str | None]:
    """The recorded command with today's module name, and the recorded module name if it was renamed."""
    for old, new in RENAMED_COMMANDS.items():
        if recorded.startswith(old):
            return new + recorded[len(old):], old.strip()
    return recorded, None


def _run(data: dict) -> dict:
    """What the page says about the training run that is not one number of the JSON files."""
    rows, env, notes = data["metrics"]["epochs"], data["metrics"]["environment"], data["notes"] or {}
    if "target" not in notes:
        raise ValueError(f"{RESULTS / 'notes.json'} has no 'target' (the book's test NLL and minutes): add it")
    minutes = rows[-1]["wall_seconds_total"] / 60
    tail = rows[-6:]  # the last epochs, for the trend when the target is missed
    load_average = env.get("load_average_at_start", [float("nan")])[0]
    command, recorded_as = _current_command(data["metrics"]["command"])
    return {
        "train_command": command.replace(" --", " \\\n    --"),  # one option a line
        "recorded_as": recorded_as,
        "minutes": minutes,
        "step_minutes": rows[-1]["training_seconds_total"] / 60,
        "mean_speed": sum(r["images_per_second"] * r["seconds"] for r in rows) / sum(r["seconds"] for r in rows),
        "slowest": min(r["images_per_second"] for r in rows),
        "fastest": max(r["images_per_second"] for r in rows),
        "load_average": load_average,
        "busy": load_average > env["cpu_count"],
        "condition_notes": "".join(" " + note for note in notes.get("conditions", [])),
        "target_met": data["evaluation"]["nll"] <= notes["target"]["test_nll_nats"]
        and minutes <= notes["target"]["training_minutes"],
        "recent_epochs": len(tail) - 1,
        "recent_gain": (tail[-1]["test_elbo"] - tail[0]["test_elbo"]) / max(1, len(tail) - 1),
    }


def render_markdown(data: dict) -> str:
    """The results page (markdown) for the JSON files ``data`` given by :func:`load`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["num"] = _fmt
    run, metrics = _run(data), data["metrics"]
    return env.get_template(TEMPLATE.name).render(
        metrics=metrics, evaluation=data["evaluation"], bench=data["benchmark"], env=metrics["environment"],
        settings=metrics["settings"], rows=metrics["epochs"], target=data["notes"]["target"], run=run,
        published=PUBLISHED,
    )


def render_figure(data: dict, path: Path = FIGURE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vi_lib import plotting

    plotting.set_theme()
    rows = data["metrics"]["epochs"]
    minutes = [r["wall_seconds_total"] / 60 for r in rows]
    colors = plotting.palette(2)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(minutes, [r["train_elbo"] for r in rows], "o-", ms=3, color=colors[0], label="train ELBO")
    ax.plot(minutes, [r["test_elbo"] for r in rows], "s-", ms=3, color=colors[1], label="test ELBO")
    k = data["evaluation"]["num_samples"]
    ax.axhline(-data["evaluation"]["nll"], color=plotting.EXACT_COLOR, ls="--",
               label=f"final test log p(x), K = {k:,}")
    low = min(r["test_elbo"] for r in rows[1:]) if len(rows) > 1 else rows[0]["test_elbo"]
    ax.set_ylim(low - 3, -data["evaluation"]["nll"] + 3)
    ax.set_xlabel("minutes of training (wall clock)")
    ax.set_ylabel("nats per image")
    ax.set_title("The 30-minute run: ConvVAE on dynamically binarised MNIST")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the page is in sync with the JSON")
    args = parser.parse_args(argv)
    data = load()
    text = render_markdown(data)
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python -m tools.render_results", file=sys.stderr)
            return 1
        print("in sync")
        return 0
    PAGE.write_text(text)
    render_figure(data)
    print(f"wrote {PAGE.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
