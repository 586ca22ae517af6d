"""``aplab noise``: the realised noise of every spec, as text, JSON and a heat-map, without training."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from aplab import noise
from aplab.cli.flags import OneLineParser
from aplab.errors import AplabError
from aplab.cli.noise import register
from tests.test_human_noise import cifar10_human_labels, write_cifar10, write_human_file

#: One spec per noise kind aplab has (a kind without an entry here fails test_every_kind_is_covered).
SPEC_PER_KIND = {"none": "none", "symmetric": "symmetric:0.4", "symmetric_uniform": "symmetric_uniform:0.5",
                 "asymmetric": "asymmetric:0.3", "pairflip": "pairflip:0.2", "instance": "instance:0.3",
                 "human": "human:aggre", "human_like": "human_like:worst"}


def run_noise(argv: list[str], capsys) -> tuple[int, str, str]:
    """``aplab noise ARGV`` as the CLI runs it: a ConfigError is one line on stderr and exit status 2."""
    parser = OneLineParser(prog="aplab")
    register(parser.add_subparsers())
    try:
        args = parser.parse_args(["noise", *argv])
        code = args.handler(args)
    except AplabError as err:
        print("aplab: error: " + " ".join(str(err).split()), file=sys.stderr)
        code = 2
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv: list[str], capsys) -> dict:
    code, out, err = run_noise([*argv, "--format", "json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_every_kind_is_covered():
    assert set(SPEC_PER_KIND) == set(noise.available())


@pytest.fixture
def cifar10_n(tmp_path):
    clean = write_cifar10(tmp_path)
    write_human_file(tmp_path / "cifar-n" / "CIFAR-10_human.pt", cifar10_human_labels(clean))
    return tmp_path


@pytest.mark.parametrize("kind", sorted(SPEC_PER_KIND))
def test_every_spec_reports_a_consistent_summary(kind, cifar10_n, capsys):
    human = kind.startswith("human")
    dataset, extra = ("cifar10", ["--data-dir", str(cifar10_n)]) if human else ("digits", [])
    summary = run_json([dataset, SPEC_PER_KIND[kind], "--seed", "3", *extra], capsys)
    t = np.array(summary["transition"])
    sizes = np.array(summary["class_sizes"])
    assert t.shape == (10, 10) and np.allclose(t.sum(axis=1), 1.0)
    np.testing.assert_allclose(summary["per_class"], 1.0 - np.diag(t))  # rows = true class
    assert summary["noise_rate"] == pytest.approx(float((sizes * summary["per_class"]).sum() / sizes.sum()))
    assert summary["spec"] == SPEC_PER_KIND[kind] and summary["num_samples"] == sizes.sum()
    if human:
        assert summary["noise_rate"] == (0.09 if kind == "human" else 0.40)  # wrong labels built into the file
        path = cifar10_n / "cifar-n" / "CIFAR-10_human.pt"
        assert summary["provenance"]["noise.human_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_digits_symmetric_flips_exactly_eta_of_each_class_with_nothing_downloaded(capsys):
    summary = run_json(["digits", "symmetric:0.4"], capsys)
    expected = [math.floor(0.4 * n) / n for n in summary["class_sizes"]]
    assert summary["per_class"] == pytest.approx(expected, abs=1e-12)
    assert summary["sampler"] is None and summary["provenance"] == {}


def test_official_sampler_flips_the_same_count_in_every_class(capsys):
    summary = run_json(["digits", "symmetric:0.4", "--sampler", "official"], capsys)
    sizes = summary["class_sizes"]
    flipped = [round(rate * n) for rate, n in zip(summary["per_class"], sizes)]
    assert flipped == [int(int(0.4 * sum(sizes)) / 10)] * 10


def test_text_output_and_heatmap(tmp_path, capsys):
    out = tmp_path / "plots"
    code, text, err = run_noise(["digits", "asymmetric:0.3", "--out", str(out)], capsys)
    assert code == 0 and err == ""
    png = out / "transition-digits-asymmetric_0.3-s0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = text.splitlines()
    assert lines[0].startswith("digits asymmetric:0.3 (seed 0): ") and "% of 1438 training labels are wrong" in lines[0]
    confusions = lines[lines.index("largest confusions (true -> noisy label):") + 1:-1]
    # MNIST's map: 2->7, 3->8, 5<->6, 7->1, and nothing else
    assert sorted(line.split(":")[0].strip() for line in confusions) == ["2 -> 7", "3 -> 8", "5 -> 6", "6 -> 5", "7 -> 1"]
    assert lines[-1] == f"transition heat-map: {png}"


@pytest.mark.parametrize("argv, starts", [
    (["cifar", "symmetric:0.4"], "aplab: error: dataset='cifar' is not allowed: one of"),
    (["digits", "symetric:0.4"], "aplab: error: noise.spec='symetric:0.4' is not allowed"),
    (["digits", "human:aggre"], "aplab: error: noise.spec='human:aggre' is not allowed: human label set 'aggre' "
                                "annotates cifar10, not digits"),
    (["digits", "pairflip:0.2", "--sampler", "official"], "aplab: error: noise.sampler='official' is not allowed"),
    (["digits"], "aplab: error: aplab noise: the following arguments are required: spec"),
    (["digits", "symmetric:0.2", "--seed", "-1"], "aplab: error: --seed=-1 is not allowed: an integer >= 0"),
])
def test_refusals_are_one_line_and_write_nothing(argv, starts, tmp_path, capsys):
    out = tmp_path / "plots"
    code, text, err = run_noise([*argv, "--out", str(out)], capsys)
    assert code == 2 and text == "" and err.startswith(starts) and err.count("\n") == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    existing = tmp_path / "a-file"
    existing.write_text("mine")
    code, text, err = run_noise(["digits", "symmetric:0.2", "--out", str(existing)], capsys)
    assert code == 2 and text == "" and err.count("\n") == 1 and "--out=" in err and "a folder" in err
    assert existing.read_text() == "mine"


def test_missing_human_file_names_it(tmp_path, capsys):
    write_cifar10(tmp_path)
    code, text, err = run_noise(["cifar10", "human:worst", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and text == ""
    assert err.startswith(f"aplab: error: noise.file='{tmp_path / 'cifar-n' / 'CIFAR-10_human.pt'}' is not allowed")


def test_help_and_argument_errors_do_not_import_torch():
    script = ("import sys\nfrom aplab.cli.flags import OneLineParser\nfrom aplab.cli.noise import register\n"
              "p = OneLineParser(prog='aplab'); register(p.add_subparsers())\n"
              "for argv in (['noise', '--help'], ['noise', 'digits'], ['noise', 'digits', 'none', '--format', 'xml']):\n"
              "    try:\n        p.parse_args(argv)\n    except SystemExit:\n        pass\n"
              "print('torch' in sys.modules, 'matplotlib' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False False"
    assert "human:aggre" in result.stdout  # the help lists the specs
