"""A backtest's files: ``panel.parquet``, ``summary.json``, ``report.html`` and its PNG plots
(growth of $10,000 per label with its drawdown, rank IC over time, returns by TechRating
decile, the event study around entries)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pipeline.backtest.run import Backtest
from pipeline.backtest.summary import EVENTS, IC_SCORES, TOP_N, Summary

PLOTS = ("growth.png", "ic.png", "deciles.png", "events.png")


def write(result: Backtest, summary: Summary, out_dir: str | os.PathLike[str]) -> dict:
    """Write every file into ``out_dir`` (created; each written whole, then renamed) and
    return their paths by name."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"panel": out / "panel.parquet", "summary": out / "summary.json"}
    _atomic(paths["panel"], lambda p: result.panel.to_parquet(p, index=False))
    document = summary.document
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    _atomic(paths["summary"], lambda p: p.write_bytes(data))
    for name, path in plots(result, summary, out).items():
        paths[name] = path
    page = _html(document, [p.name for k, p in paths.items() if k in PLOTS])
    paths["report"] = out / "report.html"
    _atomic(paths["report"], lambda p: p.write_text(page, encoding="utf-8"))
    return {k: str(v) for k, v in paths.items()}


def _atomic(path: Path, write_to) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write_to(tmp)
    os.replace(tmp, path)


def _horizon(result: Backtest) -> int:
    """The horizon the single-horizon plots show: 10 sessions when run, else the middle one."""
    return 10 if 10 in result.horizons else result.horizons[len(result.horizons) // 2]


def plots(result: Backtest, summary: Summary, out: Path) -> dict[str, Path]:
    """The PNG plots (matplotlib, Agg), by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    curves = summary.curves
    document = summary.document
    if curves:
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        for label, curve in sorted(curves.items()):
            top.plot(curve["equity"].index, curve["equity"].to_numpy(), label=label)
            bottom.plot(curve["drawdown"].index, curve["drawdown"].to_numpy() * 100, label=label)
        top.set_yscale("log")
        top.set_ylabel("$ (log scale)")
        top.set_title(
            f"Growth of $10,000: top {TOP_N} names per signal, rebalanced daily, "
            f"net of {result.costs_bps:g} bps a side"
        )
        top.legend(fontsize=8)
        bottom.set_ylabel("drawdown %")
        fig.autofmt_xdate()
        paths["growth.png"] = _save(fig, out / "growth.png")

    h = _horizon(result)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for score in IC_SCORES:
        ic = summary.daily_ic.get((score, h), pd.Series(dtype="float64"))
        if len(ic):
            ax.plot(ic.index, ic.cumsum().to_numpy(), label=score)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(f"Cumulative daily rank IC with the {h}-day forward return")
    ax.set_ylabel("sum of daily IC")
    ax.legend()
    fig.autofmt_xdate()
    paths["ic.png"] = _save(fig, out / "ic.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(result.horizons)
    for i, horizon in enumerate(result.horizons):
        table = document["horizons"][str(horizon)]["net"]["by"]["decile"]
        keys = sorted(table, key=int)
        values = [(table[k]["mean"] or 0.0) * 100 for k in keys]
        ax.bar(np.arange(len(keys)) + i * width, values, width, label=f"{horizon}d")
    ax.set_xticks(np.arange(10) + 0.4 - width / 2)
    ax.set_xticklabels([str(d) for d in range(1, 11)])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("TechRating decile (1 = lowest), per date")
    ax.set_ylabel("mean forward return, net, %")
    ax.set_title("Forward return by TechRating decile")
    ax.legend()
    paths["deciles.png"] = _save(fig, out / "deciles.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label in EVENTS:
        study = document["events"].get(label) or {}
        if study.get("entries"):
            values = [np.nan if v is None else v * 100 for v in study["cumulative_excess"]]
            ax.plot(study["offsets"], values, marker=".", label=f"{label} ({study['entries']:,})")
    ax.axvline(0, color="grey", lw=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("sessions from the entry (0: the scan that gave the label)")
    ax.set_ylabel("cumulative excess return %")
    ax.set_title("Event study: return over the equal-weight universe around entries")
    ax.legend()
    paths["events.png"] = _save(fig, out / "events.png")
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def tables(summary: dict[str, Any], kind: str = "net") -> dict[str, pd.DataFrame]:
    """The summary's main tables as frames: per horizon, returns by signal; the spreads; IC."""
    out = {}
    for h, block in summary["horizons"].items():
        by_signal = pd.DataFrame(block[kind]["by"]["signal"]).T
        out[f"{h}-day return by signal ({kind})"] = by_signal
    out[f"spreads ({kind}): top − bottom, mean per date"] = pd.DataFrame(
        {
            f"{h}d": {
                f"{g} {s['top']} − {s['bottom']}": (
                    f"{s['mean']:+.3%} (t {s['t_nw']:.1f})"
                    if s.get("mean") is not None and s.get("t_nw") is not None
                    else "—"
                )
                for g, s in block[kind]["spreads"].items()
            }
            for h, block in summary["horizons"].items()
        }
    )
    out["rank IC: mean (Newey–West t)"] = pd.DataFrame(
        {
            f"{h}d": {
                score: (
                    f"{ic['mean']:+.4f} ({ic['t_nw']:.1f})" if ic.get("mean") is not None else "—"
                )
                for score, ic in block["ic"].items()
            }
            for h, block in summary["horizons"].items()
        }
    )
    out["growth of $10,000"] = pd.DataFrame(summary["growth"]).T
    return out


def _ic_cell(ic: dict[str, Any]) -> str:
    if ic.get("mean") is None:
        return "—"
    t = "—" if ic.get("t_nw") is None else f"{ic['t_nw']:.1f}"
    return f"{ic['mean']:+.4f} ({t})"


def _html(summary: dict[str, Any], images: list[str]) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Technic backtest</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}</style>",
        f"<h1>Backtest {html.escape(summary['start'])} → {html.escape(summary['end'])}</h1>",
        f"<p>{summary['sessions']:,} sessions, {summary['rows']:,} scanned rows of "
        f"{summary['tickers']:,} tickers; trade style {html.escape(str(summary['trade_style']))};"
        f" costs {summary['costs_bps']:g} bps a side. Store {html.escape(summary['store'])} "
        f"({html.escape(summary['data_version'])}).</p>",
    ]
    parts += [
        f"<p><img src='{html.escape(name)}' alt='{html.escape(name)}'></p>" for name in images
    ]
    for title, frame in tables(summary).items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(frame.to_html(float_format=lambda v: f"{v:.4g}", na_rep="—"))
    return "\n".join(parts)
