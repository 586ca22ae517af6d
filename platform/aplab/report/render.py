"""A summary table as text: the paper's column and method names, Markdown, LaTeX and plain text, bold the best."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .tables import KIND_ORDER, METRICS


def column_label(kind: str, rate: float) -> str:
    """The paper's column names: clean, sym. 0.4, asym. 0.2."""
    if kind == "clean":
        return "clean"
    short = {"symmetric": "sym.", "asymmetric": "asym."}.get(kind, kind)
    return f"{short} {rate:g}"


def method_label(method: str) -> str:
    """CE, NCE+RCE, ... as the paper writes them (a variant suffix stays as it is)."""
    name, sep, rest = method.partition(" ")
    return name.upper() + sep + rest


@dataclass(frozen=True)
class Markup:
    """How one output format writes emphasis, ± and its table frame."""

    bold: str
    underline: str
    pm: str
    minus: str
    note: str
    escape: tuple[tuple[str, str], ...] = ()

    def text(self, value: str) -> str:
        for old, new in self.escape:
            value = value.replace(old, new)
        return value


MARKDOWN = Markup(bold="**{}**", underline="<u>{}</u>", pm=" ± ", minus="-", note=" ({})")
LATEX = Markup(bold=r"\textbf{{{}}}", underline=r"\underline{{{}}}", pm=r" $\pm$ ", minus="$-$",
               note=r" {{\scriptsize ({})}}", escape=(("_", r"\_"), ("%", r"\%"), ("&", r"\&")))


def cell_text(row: pd.Series, markup: Markup) -> str:
    """``mean ± std`` (emphasised when first or second in its column), then (paper mean, difference)."""
    value = f"{row['mean']:.2f}" + (f"{markup.pm}{row['std']:.2f}" if not math.isnan(row["std"]) else "")
    if row["rank"] == 1:
        value = markup.bold.format(value)
    elif row["rank"] == 2:
        value = markup.underline.format(value)
    if not math.isnan(row["paper_mean"]):
        diff = f"{row['diff']:+.2f}".replace("-", markup.minus)
        value += markup.note.format(f"{row['paper_mean']:.2f}, {diff}")
    return value


def _grid(summary: pd.DataFrame, markup: Markup) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the wide table: dataset, loss, then one column per noise setting."""
    columns = list(dict.fromkeys(zip(summary["noise_kind"], summary["noise_rate"])))
    kinds = list(KIND_ORDER) + sorted({k for k, _ in columns if k not in KIND_ORDER})
    columns.sort(key=lambda c: (kinds.index(c[0]), c[1]))
    header = ["dataset", "loss"] + [column_label(k, r) for k, r in columns]
    body = []
    for (dataset, method), group in summary.groupby(["dataset", "method"], sort=False):
        cells = {(r["noise_kind"], r["noise_rate"]): cell_text(r, markup) for _, r in group.iterrows()}
        body.append([markup.text(dataset), markup.text(method_label(method))] + [cells.get(c, "") for c in columns])
    return header, body


def caption(metric: str, summary: pd.DataFrame) -> str:
    seeds = sorted(set(summary["n"])) if not summary.empty else []
    n = "/".join(str(s) for s in seeds)
    title = METRICS.get(metric).title
    paper = "in brackets the paper's mean and our difference (points); " if _has_paper(summary) else ""
    return (f"{title[0].upper()}{title[1:]}: mean ± sample std over {n} seed(s); {paper}best in each column bold, "
            "second underlined.")


def _has_paper(summary: pd.DataFrame) -> bool:
    return "paper_mean" in summary and bool(summary["paper_mean"].notna().any())


def plain_caption(metric: str, summary: pd.DataFrame) -> str:
    """The heading of the terminal table: what its numbers are, and its marks (brackets only when shown)."""
    seeds = "/".join(str(s) for s in sorted(set(summary["n"]))) if not summary.empty else "0"
    title = METRICS.get(metric).title
    paper = "; (paper's mean, our difference) beside each" if _has_paper(summary) else ""
    return f"{title[0].upper()}{title[1:]}, mean ± sample std over {seeds} seed(s); * best in each column{paper}:"


def to_markdown(summary: pd.DataFrame, metric: str = "last") -> str:
    """The wide table in Markdown (bold best, underlined second), with a caption line."""
    header, body = _grid(summary, MARKDOWN)
    lines = [f"_{caption(metric, summary)}_", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    previous = None
    for row in body:
        shown = [row[0] if row[0] != previous else ""] + row[1:]
        previous = row[0]
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def to_latex(summary: pd.DataFrame, metric: str = "last") -> str:
    """The wide table as a LaTeX ``table`` with booktabs rules (needs ``\\usepackage{booktabs}``)."""
    header, body = _grid(summary, LATEX)
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + LATEX.text(caption(metric, summary)).replace(
             "±", r"$\pm$") + "}", r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
             r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    previous = None
    for row in body:
        if previous is not None and row[0] != previous:
            lines.append(r"\midrule")
        lines.append(" & ".join([row[0] if row[0] != previous else ""] + row[1:]) + r" \\")
        previous = row[0]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_plain(summary: pd.DataFrame) -> str:
    """The wide table for a terminal (no markup; * marks the best of a column)."""
    plain = Markup(bold="{}*", underline="{}", pm=" ± ", minus="-", note=" ({})")
    header, body = _grid(summary, plain)
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *body]]
    return "\n".join(lines) + "\n"
