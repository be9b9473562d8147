"""The MNIST results page is generated from the committed JSON data and must stay in sync with it."""

import pytest

from tools import render_results


def test_results_page_is_in_sync_with_its_json():
    data = render_results.load()
    assert data["metrics"] is not None and data["evaluation"] is not None, "book/results/*.json missing"
    assert render_results.PAGE.read_text() == render_results.render_markdown(data), (
        "book/mnist_results.md differs from what book/results/*.json give: run python -m tools.render_results"
    )
    assert render_results.FIGURE.exists()


def test_results_data_follow_the_protocol():
    data = render_results.load()
    evaluation, metrics = data["evaluation"], data["metrics"]
    assert evaluation["num_images"] == 10_000 and evaluation["num_samples"] >= 1000
    assert "dynamic binarisation" in evaluation["protocol"]
    assert evaluation["test_elbo"]["mean"] <= -evaluation["nll"]  # the ELBO is a lower bound
    assert metrics["epochs"][-1]["wall_seconds_total"] <= 30 * 60
    assert [r["epoch"] for r in metrics["epochs"]] == list(range(1, len(metrics["epochs"]) + 1))


def test_page_mentions_every_final_number():
    data = render_results.load()
    text = render_results.render_markdown(data)
    assert render_results._fmt(data["evaluation"]["nll"]) in text
    assert data["metrics"]["command"].split(" --")[0] in text
    for row in render_results.PUBLISHED:
        assert row["nll"] in text


def test_the_target_on_the_page_is_the_one_in_notes_json():
    """The book's target is defined once, in book/results/notes.json (the benchmark reads it too)."""
    data = render_results.load()
    data["notes"]["target"] = {"test_nll_nats": 80, "training_minutes": 25}
    text = render_results.render_markdown(data)
    assert "a test NLL of at most 80 nats from at most 25 minutes of training" in text
    assert "this run does **not** meet it" in text
    del data["notes"]["target"]
    with pytest.raises(ValueError, match="no 'target'"):
        render_results.render_markdown(data)
